"""Cleanup against a misbehaving S3 (moto's server behind a fault-injecting proxy)."""

import os
import signal
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from portal.models import CleanupRun, UploadPart, UploadSession
from portal.services.cleanup import PART_CLAIM_TTL, run_cleanup
from portal.storage import get_storage
from tests.cleanup.helpers import GRACE, cleanup_process, temp_keys
from tests.cleanup.s3_proxy import FaultyS3Proxy
from tests.factories import make_session

Status = UploadSession.Status


@pytest.fixture
def faulty_s3(s3_settings):
    """The S3 adapter, talking to moto's server through a proxy the test can break."""
    with (
        FaultyS3Proxy(s3_settings["AWS_S3_ENDPOINT_URL"]) as proxy,
        override_settings(**{**s3_settings, "AWS_S3_ENDPOINT_URL": proxy.url}),
    ):
        yield proxy, get_storage()


@pytest.mark.django_db
def test_failing_deletes_end_the_run_partial_and_the_next_run_finishes(faulty_s3):
    proxy, storage = faulty_s3
    now = timezone.now()
    for _ in range(20):
        make_session(status=Status.COMPLETE, parts=10, storage=storage, finished_at=now - 2 * GRACE)
    live = make_session(status=Status.IN_PROGRESS, parts=2, storage=storage, last_activity_at=now)
    live_keys = set(live.parts.values_list("temp_storage_key", flat=True))
    proxy.fail_every = 10  # 20 DeleteObjects calls: one answers 500, one fails a key

    first = run_cleanup(trigger="beat", now=now, batch_size=10)

    assert proxy.failed_calls >= 1 and proxy.failed_keys == 1
    assert first.status == "partial"
    assert (
        first.counts["orphan_temp_parts"]["deleted"],
        first.counts["orphan_temp_parts"]["failed"],
    ) == (189, 11)
    assert first.counts["total"]["failed"] == 11
    assert {error["step"] for error in first.errors} == {"orphan_temp_parts"}
    assert len(first.errors) == 11
    assert UploadPart.objects.count() == 11 + 2

    proxy.heal()
    second = run_cleanup(trigger="beat", now=now, batch_size=10)

    assert second.status == "success"
    assert (
        second.counts["orphan_temp_parts"]["deleted"],
        second.counts["orphan_temp_parts"]["failed"],
    ) == (11, 0)
    assert temp_keys(storage) == live_keys
    assert set(UploadPart.objects.values_list("temp_storage_key", flat=True)) == live_keys


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_killed_during_part_deletion_a_rerun_finishes_and_spares_active_sessions(
    faulty_s3, s3_settings
):
    proxy, storage = faulty_s3
    now = timezone.now()
    for _ in range(5):
        make_session(status=Status.FAILED, parts=10, storage=storage, finished_at=now - 2 * GRACE)
    live = make_session(status=Status.IN_PROGRESS, parts=3, storage=storage, last_activity_at=now)
    idle = make_session(
        status=Status.IN_PROGRESS,
        parts=2,
        storage=storage,
        last_activity_at=now - timedelta(hours=30),
    )
    active_keys = set(
        UploadPart.objects.filter(session__in=[live, idle]).values_list(
            "temp_storage_key", flat=True
        )
    )
    proxy.hang_after = 2  # two batches of ten go, the third hangs

    process = cleanup_process(
        **{**s3_settings, "AWS_S3_ENDPOINT_URL": proxy.url},
        PORTAL_CLEANUP_BATCH_SIZE=10,
    )
    try:
        assert proxy.hung.wait(timeout=60), process.stderr.read() if process.poll() else ""
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    # Two batches' objects were deleted before the hang. The rows of a batch go while
    # the next batch's objects are being deleted, so the second batch's rows may still
    # be there; the rerun finds their objects already gone.
    left = UploadPart.objects.count() - 5
    assert left in (50 - 20, 50 - 10)
    assert CleanupRun.objects.get().status == "running"

    # The killed run's claim on its batch expires; the next run takes it up.
    proxy.heal()
    proxy.release.set()
    rerun = run_cleanup(
        trigger="command", now=timezone.now() + PART_CLAIM_TTL + timedelta(minutes=1)
    )

    assert rerun.status == "success"
    assert rerun.counts["orphan_temp_parts"]["deleted"] == left
    assert temp_keys(storage) == active_keys
    assert set(UploadPart.objects.values_list("temp_storage_key", flat=True)) == active_keys
    live.refresh_from_db()
    assert live.status == Status.IN_PROGRESS
