"""Overlapping cleanup runs over the retention steps, on PostgreSQL, in separate processes."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from portal.models import FileDeletion, OutboxEvent, UploadFile
from portal.services import retention
from portal.services.retention import record_deletions
from tests.cleanup.helpers import overlapping_cleanup_runs
from tests.factories import make_user
from tests.retention.helpers import DAY, NOTICE, bulk_stored_files, stored_file

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def total(reports, step, count):
    return sum(report["counts"][step][count] for report in reports)


def test_four_overlapping_runs_notify_and_delete_each_file_exactly_once(fs_storage, storage_root):
    user = make_user()
    files = bulk_stored_files(
        user=user, count=20_000, stored_at=timezone.now() - 40 * DAY, root=storage_root
    )
    kept = bulk_stored_files(user=user, count=50, stored_at=timezone.now(), root=storage_root)
    foreign = storage_root / "files" / "operator-backup.tar"
    foreign.write_bytes(b"not the portal's")

    notices = overlapping_cleanup_runs(storage_root)

    assert total(notices, "expiring_files", "notified") == 20_000
    assert total(notices, "expired_files", "deleted") == 0
    assert sum(1 for r in notices if r["counts"]["expiring_files"]["notified"]) >= 2
    assert OutboxEvent.objects.filter(event_type="file.expiring").count() == 20_000
    assert UploadFile.objects.filter(expiring_notified_at__isnull=False).count() == 20_000

    # The notice period passes.
    UploadFile.objects.filter(expiring_notified_at__isnull=False).update(
        expiring_notified_at=F("expiring_notified_at") - NOTICE - timedelta(minutes=1)
    )
    deletions = overlapping_cleanup_runs(storage_root)

    assert total(deletions, "expired_files", "deleted") == 20_000
    assert total(deletions, "expired_files", "failed") == 0
    assert total(deletions, "expiring_files", "notified") == 0
    assert sum(1 for r in deletions if r["counts"]["expired_files"]["deleted"]) >= 2
    assert all(r["status"] == "success" and not r["errors"] for r in notices + deletions)
    assert FileDeletion.objects.count() == 20_000
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == 20_000
    assert UploadFile.objects.filter(status="deleted").count() == 20_000
    assert not any((storage_root / f.storage_key).exists() for f in files)
    assert all((storage_root / f.storage_key).exists() for f in kept)
    assert foreign.exists()


def test_a_deletion_is_recorded_while_another_run_holds_its_row_for_an_instant(fs_storage):
    # A claim that finds a row taken still locks it until its transaction ends; the
    # record must wait for that, not skip the row (its object is already gone).
    upload = stored_file(fs_storage, stored_at=timezone.now() - 40 * DAY)
    locked = threading.Event()

    def claim_elsewhere():
        with transaction.atomic():
            list(UploadFile.objects.select_for_update().filter(pk=upload.pk))
            locked.set()
            time.sleep(0.5)
        connection.close()

    other_run = threading.Thread(target=claim_elsewhere)
    other_run.start()
    locked.wait(10)
    target = retention._Target(upload.pk, upload.storage_key, upload.size_bytes)
    recorded = record_deletions(
        [target], now=timezone.now(), reason=FileDeletion.Reason.RETENTION_EXPIRED
    )
    other_run.join()

    assert recorded == [target]
    assert FileDeletion.objects.filter(file_id=upload.pk).count() == 1
    assert UploadFile.objects.get(pk=upload.pk).status == UploadFile.Status.DELETED
