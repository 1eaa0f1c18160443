"""``pk__any``: the same rows as ``pk__in``, as one array parameter on PostgreSQL."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.models import CleanupControl, UploadSession
from tests.factories import make_session

pytestmark = pytest.mark.django_db


def test_any_selects_the_rows_in_the_list_and_no_others():
    sessions = [make_session() for _ in range(3)]
    wanted = [sessions[0].pk, sessions[2].pk, None]

    assert set(UploadSession.objects.filter(pk__any=wanted).values_list("pk", flat=True)) == {
        sessions[0].pk,
        sessions[2].pk,
    }


def test_any_of_an_empty_list_matches_nothing_without_a_query():
    make_session()

    with CaptureQueriesContext(connection) as queries:
        assert list(UploadSession.objects.filter(pk__any=[])) == []
    assert len(queries) == 0


def test_any_is_one_parameter_on_postgresql():
    ids = [make_session().pk for _ in range(5)]

    with CaptureQueriesContext(connection) as queries:
        assert UploadSession.objects.filter(pk__any=ids).count() == 5

    sql = queries[-1]["sql"]
    if connection.vendor == "postgresql":
        assert "= ANY(" in sql and "::uuid[]" in sql
    else:
        assert " IN (" in sql


def test_any_works_on_integer_primary_keys():
    control = CleanupControl.current()

    assert CleanupControl.objects.filter(pk__any=[control.pk, 7]).get() == control
