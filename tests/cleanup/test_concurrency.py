"""Overlapping cleanup runs and racing uploads, on PostgreSQL."""

import io
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from portal.exceptions import SessionGone
from portal.models import CleanupRun, UploadPart, UploadSession
from portal.services.chunks import receive_part
from portal.services.cleanup import cleanup_stale_sessions, run_cleanup
from tests.cleanup.helpers import TTL, bulk_sessions, overlapping_cleanup_runs, temp_keys
from tests.factories import make_session, make_user

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
Status = UploadSession.Status


def test_four_overlapping_runs_count_every_item_exactly_once(fs_storage, storage_root):
    now = timezone.now()
    user = make_user()
    bulk_sessions(
        user=user, count=20_000, status=Status.IN_PROGRESS, last_activity_at=now - 2 * TTL
    )
    bulk_sessions(
        user=user,
        count=20_000,
        status=Status.COMPLETE,
        parts=4,
        last_activity_at=now - timedelta(days=2),
        finished_at=now - timedelta(days=2),
        root=storage_root,
    )
    live = bulk_sessions(
        user=user,
        count=50,
        status=Status.IN_PROGRESS,
        parts=4,
        last_activity_at=now,
        root=storage_root,
    )
    live_keys = set(
        UploadPart.objects.filter(session__in=live).values_list("temp_storage_key", flat=True)
    )

    reports = overlapping_cleanup_runs(storage_root)

    def total(step, count):
        return sum(report["counts"][step][count] for report in reports)

    assert total("stale_sessions", "expired") == 20_000
    assert total("orphan_temp_parts", "deleted") == 80_000
    assert total("total", "failed") == 0
    assert all(report["status"] == "success" and not report["errors"] for report in reports)
    # The work was really shared, not done by whichever process started first.
    assert sum(1 for r in reports if r["counts"]["orphan_temp_parts"]["deleted"]) >= 2
    assert temp_keys(fs_storage) == live_keys
    assert (
        UploadSession.objects.filter(status=Status.FAILED, failure_reason="expired").count()
        == 20_000
    )
    assert UploadPart.objects.count() == len(live_keys)
    assert CleanupRun.objects.filter(status="success").count() == 4


def test_a_part_holding_its_session_keeps_it_alive_through_expiry(fs_storage):
    now = timezone.now()
    session = make_session(
        status=Status.IN_PROGRESS, last_activity_at=now - TTL - timedelta(minutes=1)
    )
    locked, release = threading.Event(), threading.Event()

    def receive_part_in_another_connection():
        # What receive_part does: lock the session row, record the part, bump activity.
        try:
            with transaction.atomic():
                UploadSession.objects.select_for_update().get(pk=session.pk)
                locked.set()
                release.wait(timeout=30)
                UploadSession.objects.filter(pk=session.pk).update(last_activity_at=timezone.now())
        finally:
            connection.close()

    upload = threading.Thread(target=receive_part_in_another_connection)
    upload.start()
    assert locked.wait(timeout=30)
    try:
        # The locked session is skipped, not waited for and not expired.
        assert cleanup_stale_sessions(now=now).expired == 0
    finally:
        release.set()
        upload.join(timeout=30)

    assert cleanup_stale_sessions(now=now).expired == 0
    session.refresh_from_db()
    assert session.status == Status.IN_PROGRESS


def test_a_part_arriving_after_expiry_is_refused_and_its_object_removed(fs_storage):
    now = timezone.now()
    session = make_session(status=Status.INIT, total_parts=2, last_activity_at=now - 2 * TTL)
    assert run_cleanup(trigger="beat", now=now).counts["stale_sessions"]["expired"] == 1

    with pytest.raises(SessionGone):
        receive_part(
            user=session.created_by,
            session_id=session.pk,
            part_number=1,
            stream=io.BytesIO(b"x" * session.chunk_size_bytes),
            content_length=session.chunk_size_bytes,
            now=now,
        )

    assert temp_keys(fs_storage) == set()
    assert not UploadPart.objects.exists()
