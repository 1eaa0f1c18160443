"""Overlapping cleanup runs over the retention steps, on PostgreSQL, in separate processes."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from portal.models import FileDeletion, OutboxEvent, UploadFile
from tests.cleanup.helpers import overlapping_cleanup_runs
from tests.factories import make_user
from tests.retention.helpers import DAY, NOTICE, bulk_stored_files

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
