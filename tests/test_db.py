"""``portal.db``: lock a batch with SKIP LOCKED and stamp it, on PostgreSQL and SQLite.

The suite runs on PostgreSQL when DATABASE_URL points at it; the last test runs
this module again on a SQLite database, so both paths are proven in every run.
"""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.db import claim_batch, committed_asynchronously, lock_batch, unique_row
from portal.models import OutboxDelivery, UploadFile, UploadSession
from tests.environment import require, row_locked, uses_postgres
from tests.factories import emit_file_stored, make_session

pytestmark = pytest.mark.django_db
Status = UploadSession.Status
NOW = timezone.now()


def sessions(count, **fields):
    made = [make_session(status=Status.INIT, **fields) for _ in range(count)]
    return sorted(made, key=lambda session: session.pk)


def test_claim_stamps_the_first_rows_in_order_and_returns_them():
    made = sessions(5, last_activity_at=NOW - timedelta(days=1))
    active = UploadSession.objects.filter(status=Status.INIT)

    with transaction.atomic():
        rows = claim_batch(
            active,
            size=3,
            values={"status": Status.FAILED, "updated_at": NOW},
            returning=("status",),
        )

    assert [pk for pk, _ in rows] == [session.pk for session in made[:3]]
    assert UploadSession.objects.filter(status=Status.FAILED, updated_at=NOW).count() == 3
    assert set(active.values_list("pk", flat=True)) == {s.pk for s in made[3:]}


def test_claim_orders_by_the_given_field_and_sets_related_rows():
    old, new = sessions(2)
    UploadSession.objects.filter(pk=new.pk).update(last_activity_at=NOW - timedelta(days=2))
    UploadSession.objects.filter(pk=old.pk).update(last_activity_at=NOW - timedelta(days=1))

    with transaction.atomic():
        rows = claim_batch(
            UploadSession.objects.filter(status=Status.INIT),
            order_by="last_activity_at",
            size=1,
            values={"status": Status.FAILED, "updated_at": NOW},
            related=("file", {"status": UploadFile.Status.FAILED, "updated_at": NOW}),
        )

    assert rows == [(new.pk,)]
    assert UploadFile.objects.get(pk=new.file_id).status == UploadFile.Status.FAILED
    assert UploadFile.objects.get(pk=old.file_id).status == UploadFile.Status.UPLOADING


def test_claim_takes_expressions_and_leaves_rows_outside_the_queryset():
    event = emit_file_stored(file={"id": "1"})
    for destination, status in [("a", "pending"), ("b", "pending"), ("c", "delivered")]:
        OutboxDelivery.objects.create(event=event, destination=destination, status=status)
    pending = OutboxDelivery.objects.filter(status="pending")
    assert pending.count() == 2
    before = {d.pk: d.attempts for d in OutboxDelivery.objects.all()}

    with transaction.atomic():
        rows = claim_batch(
            pending, size=10, values={"attempts": F("attempts") + 1, "updated_at": NOW}
        )

    after = {d.pk: d.attempts for d in OutboxDelivery.objects.all()}
    assert {pk for (pk,) in rows} == set(pending.values_list("pk", flat=True))
    assert all(after[pk] == before[pk] + 1 for (pk,) in rows)
    assert all(after[pk] == before[pk] for pk in before if (pk,) not in rows)


def test_claim_of_nothing_returns_nothing():
    with transaction.atomic():
        assert claim_batch(UploadSession.objects.all(), size=5, values={"updated_at": NOW}) == []


def test_lock_batch_walks_the_index_after_a_key():
    made = sessions(4)

    with transaction.atomic():
        first = lock_batch(UploadSession.objects.all(), size=2, fields=("status",))
        rest = lock_batch(UploadSession.objects.all(), size=5, after=first[-1][0])

    assert first == [(s.pk, Status.INIT) for s in made[:2]]
    assert rest == [(s.pk,) for s in made[2:]]


def test_committed_asynchronously_commits():
    session = make_session(status=Status.INIT)

    with committed_asynchronously():
        UploadSession.objects.filter(pk=session.pk).update(failure_reason="x")

    assert UploadSession.objects.get(pk=session.pk).failure_reason == "x"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rows_another_transaction_holds_are_skipped_not_waited_for():
    require(uses_postgres(), "needs PostgreSQL: set DATABASE_URL=postgres://...")
    held, free = sessions(2)

    with row_locked(UploadSession.objects.filter(pk=held.pk)), transaction.atomic():
        rows = claim_batch(UploadSession.objects.all(), size=5, values={"updated_at": NOW})
        locked_rows = lock_batch(UploadSession.objects.all(), size=5)

    assert rows == [(free.pk,)]
    assert locked_rows == [(free.pk,)]


def test_unique_row_reads_the_row_or_none_without_ordering_it():
    session = make_session()
    with CaptureQueriesContext(connection) as queries:
        found = unique_row(UploadSession.objects.filter(pk=session.pk))
        missing = unique_row(
            UploadSession.objects.filter(pk=sessions(1)[0].pk, status=Status.FAILED)
        )

    assert (found, missing) == (session, None)
    assert all("ORDER BY" not in query["sql"] for query in queries.captured_queries)


@pytest.mark.skipif(os.environ.get("PORTAL_TEST_DB_SQLITE") == "1", reason="already the SQLite run")
def test_the_same_tests_pass_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PORTAL_TEST_DB_SQLITE": "1",
    }
    env.pop("CI", None)  # the PostgreSQL-only test skips there, as it should
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 passed" in done.stdout
