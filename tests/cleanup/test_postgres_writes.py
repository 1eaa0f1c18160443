"""What part deletion writes on PostgreSQL: HOT claims, asynchronous commits kept local."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from portal.models import UploadPart, UploadSession
from portal.services.cleanup import cleanup_orphan_temp_parts
from tests.cleanup.helpers import bulk_sessions, temp_keys
from tests.environment import table_write_count
from tests.factories import make_user

pytestmark = pytest.mark.postgres


def finished_sessions_with_parts(count, root=None):
    now = timezone.now()
    return bulk_sessions(
        user=make_user(),
        count=count,
        status=UploadSession.Status.COMPLETE,
        parts=4,
        last_activity_at=now - timedelta(days=2),
        finished_at=now - timedelta(days=2),
        root=root,
    )


@pytest.mark.django_db
def test_part_claims_are_hot_updates_that_add_no_index_entries(fs_storage):
    # 400 rows fill several pages: without free room on them (fillfactor 100)
    # most claims would be new row versions with an entry in every index.
    finished_sessions_with_parts(100)

    result = cleanup_orphan_temp_parts(now=timezone.now(), dry_run=False)

    assert result.deleted == 400
    assert table_write_count(UploadPart, "tuples_updated") == 400
    assert table_write_count(UploadPart, "tuples_hot_updated") == 400


@pytest.mark.django_db(transaction=True)
def test_asynchronous_commit_stays_inside_the_claim_and_delete_transactions(
    fs_storage, storage_root
):
    finished_sessions_with_parts(3, root=storage_root)

    result = cleanup_orphan_temp_parts(now=timezone.now(), dry_run=False)

    assert result.deleted == 12 and temp_keys(fs_storage) == set()
    assert not UploadPart.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
