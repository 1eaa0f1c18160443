"""Retention steps on several connections at once (PORTAL_RETENTION_WORKERS, PostgreSQL)."""

import contextvars
import threading

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from portal.checks import check_numeric_ranges
from portal.db import on_connections
from portal.models import FileDeletion, OutboxEvent, UploadFile
from portal.services.retention import delete_expired_files, notify_expiring_files
from tests.factories import make_user
from tests.retention.helpers import DAY, NOTICE, bulk_stored_files

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

request_id = contextvars.ContextVar("request_id", default=None)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_work_runs_at_once_on_as_many_connections_in_the_callers_context():
    request_id.set("run-1")
    started = threading.Barrier(3)

    def work():
        started.wait(10)  # all three threads inside work() together
        return backend_pid(), request_id.get(), threading.get_ident()

    results = on_connections(work, 3)

    assert len({pid for pid, _, _ in results}) == 3
    assert backend_pid() not in {pid for pid, _, _ in results}
    assert {rid for _, rid, _ in results} == {"run-1"}
    assert threading.get_ident() not in {ident for _, _, ident in results}


def test_inside_a_transaction_work_runs_once_here():
    with transaction.atomic():
        results = on_connections(lambda: (backend_pid(), threading.get_ident()), 3)
        assert results == [(backend_pid(), threading.get_ident())]


def test_a_failing_worker_raises_after_the_others_finish():
    started, finished = threading.Barrier(3), []

    def work():
        # The first one to pass the barrier fails; the other two go on to the end.
        if started.wait(10) == 0:
            raise RuntimeError("worker broke")
        finished.append(backend_pid())
        return True

    with pytest.raises(RuntimeError, match="worker broke"):
        on_connections(work, 3)
    assert len(finished) == 2


def test_two_workers_notify_and_delete_each_file_once_and_keep_what_is_not_theirs(
    fs_storage, storage_root
):
    now = timezone.now()
    user = make_user()
    files = bulk_stored_files(user=user, count=3000, stored_at=now - 40 * DAY, root=storage_root)
    kept = bulk_stored_files(user=user, count=20, stored_at=now, root=storage_root)
    foreign = storage_root / "files" / "operator-notes.txt"
    foreign.write_bytes(b"not the portal's")
    # One object the filesystem refuses to unlink: a directory where the file should be.
    refused = files[1234]
    (storage_root / refused.storage_key).unlink()
    (storage_root / refused.storage_key).mkdir()

    with override_settings(PORTAL_RETENTION_WORKERS=2):
        notices = notify_expiring_files(now=now, dry_run=False, batch_size=100)
        UploadFile.objects.filter(expiring_notified_at__isnull=False).update(
            expiring_notified_at=F("expiring_notified_at") - NOTICE
        )
        deletions = delete_expired_files(now=now, dry_run=False, batch_size=100)

    assert notices.notified == 3000
    assert OutboxEvent.objects.filter(event_type="file.expiring").count() == 3000
    assert (deletions.deleted, deletions.failed) == (2999, 1)
    assert [error.item for error in deletions.errors] == [str(refused.pk)]
    assert FileDeletion.objects.count() == 2999
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == 2999
    assert not FileDeletion.objects.filter(file_id=refused.pk).exists()
    left = UploadFile.objects.get(pk=refused.pk)
    assert (left.status, left.retention_claimed_until) == ("stored", None)
    assert not any((storage_root / f.storage_key).is_file() for f in files)
    assert all((storage_root / f.storage_key).exists() for f in [*kept, refused])
    assert foreign.read_bytes() == b"not the portal's"


@pytest.mark.django_db(transaction=False)
def test_fewer_than_one_worker_is_a_check_error():
    with override_settings(PORTAL_RETENTION_WORKERS=0):
        errors = check_numeric_ranges()

    assert [e.id for e in errors] == ["portal.E061"]
    assert "PORTAL_RETENTION_WORKERS" in errors[0].msg
