"""Each counter of SPEC §12 moves once per real event, through the services that cause it."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from portal.models import CleanupRun, UploadSession
from portal.services.cleanup_runner import run_cleanup
from portal.services.dispatcher import dispatch_due_deliveries
from portal.services.tokens import create_api_token
from portal.signals import cleanup_finished
from tests.api.conftest import SMALL_LIMITS, UploadClient, sha256
from tests.factories import emit_file_stored, make_session, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def uploads(fs_storage):
    user = make_user()
    with override_settings(**SMALL_LIMITS):
        yield UploadClient(create_api_token(user=user).plaintext, user=user)


def open_session(client, size, key=""):
    response = client.create(
        original_filename="a.bin", total_size_bytes=size, chunk_size_bytes=8, idempotency_key=key
    )
    assert response.status_code in (200, 201), response.content
    return response.json()["session_id"]


def test_sessions_and_part_bytes_are_counted_once_each(uploads, samples):
    done = open_session(uploads, 12, key="k1")
    assert open_session(uploads, 12, key="k1") == done  # an idempotent repeat opens nothing
    assert uploads.put_part(done, 1, b"a" * 8).status_code == 201
    assert uploads.put_part(done, 1, b"a" * 8).status_code == 200  # identical re-send
    assert uploads.put_part(done, 2, b"b" * 4).status_code == 201
    assert uploads.put_part(done, 2, b"c" * 4).status_code == 409  # a conflict: not counted
    assert uploads.finalize(done).status_code == 200
    assert uploads.finalize(done).status_code == 200  # idempotent: counted once
    aborted = open_session(uploads, 8)
    assert uploads.abort(aborted).status_code == 204
    mismatch = open_session(uploads, 8)
    assert uploads.put_part(mismatch, 1, b"d" * 8).status_code == 201
    assert uploads.finalize(mismatch, sha256=sha256(b"not it")).status_code == 422

    assert samples.delta("portal_upload_sessions_opened_total") == 3
    assert samples.delta("portal_upload_bytes_total") == 8 + 4 + 8
    assert samples.delta("portal_upload_sessions_total", outcome="complete") == 1
    assert samples.delta("portal_upload_sessions_total", outcome="aborted") == 1
    assert samples.delta("portal_upload_sessions_total", outcome="checksum_mismatch") == 1
    assert samples.delta("portal_upload_sessions_total", outcome="expired") == 0


def test_a_live_cleanup_run_counts_its_items_and_expired_sessions(fs_storage, samples):
    now = timezone.now()
    make_session(last_activity_at=now - timedelta(days=2))
    make_session(
        status=UploadSession.Status.ABORTED,
        parts=2,
        storage=fs_storage,
        last_activity_at=now - timedelta(hours=2),
    )

    report = run_cleanup(trigger="command", now=now)

    assert report.status == "success"
    assert samples.delta("portal_upload_sessions_total", outcome="expired") == 1
    assert samples.delta("portal_cleanup_items_total", step="stale_sessions", result="expired") == 1
    assert (
        samples.delta("portal_cleanup_items_total", step="orphan_temp_parts", result="deleted") == 2
    )
    assert samples.delta("portal_cleanup_run_duration_seconds_count") == 1


def finished_run(**fields):
    now = timezone.now()
    return CleanupRun.objects.create(
        trigger="beat", started_at=now - timedelta(seconds=3), finished_at=now, **fields
    )


COUNTS = {
    "orphan_temp_parts": {"deleted": 5, "failed": 1, "foreign": 2, "bytes_reclaimed": 4096},
    "orphan_storage_objects": {"deleted": 0, "failed": 0, "foreign": 7, "bytes_reclaimed": 0},
    "total": {"deleted": 5, "failed": 1, "bytes_reclaimed": 4096},
}


def test_the_receiver_reads_bytes_and_results_per_step_from_the_run_counts(samples):
    run = finished_run(status="partial", counts=COUNTS)

    cleanup_finished.send(sender=CleanupRun, run=run)

    def items(step, result):
        return samples.delta("portal_cleanup_items_total", step=step, result=result)

    assert items("orphan_temp_parts", "deleted") == 5
    assert items("orphan_temp_parts", "failed") == 1
    assert items("orphan_temp_parts", "foreign") == 2
    assert items("orphan_storage_objects", "foreign") == 7
    assert items("total", "deleted") == 0  # the total is not a step
    assert samples.delta("portal_cleanup_bytes_reclaimed_total", step="orphan_temp_parts") == 4096
    assert samples.delta("portal_cleanup_run_duration_seconds_sum") == pytest.approx(3)


@pytest.mark.parametrize(
    ("fields", "duration_counted"),
    [({"status": "success", "dry_run": True}, 1), ({"status": "skipped"}, 0)],
)
def test_dry_and_skipped_runs_count_no_items(samples, fields, duration_counted):
    run = finished_run(counts=COUNTS, **fields)

    cleanup_finished.send(sender=CleanupRun, run=run)

    assert (
        samples.delta("portal_cleanup_items_total", step="orphan_temp_parts", result="deleted") == 0
    )
    assert samples.delta("portal_cleanup_bytes_reclaimed_total", step="orphan_temp_parts") == 0
    assert samples.delta("portal_cleanup_run_duration_seconds_count") == duration_counted


def test_deliveries_are_counted_by_outcome(receiver, samples):
    runner = {"PORTAL_RUNNER_AUTH_SECRET": "s", "PORTAL_OUTBOX_MAX_ATTEMPTS": 2}
    with override_settings(PORTAL_RUNNER_ENDPOINT=f"{receiver.url}/ok", **runner):
        for n in range(3):
            emit_file_stored(n=n)
        assert dispatch_due_deliveries().delivered == 3
    with override_settings(PORTAL_RUNNER_ENDPOINT=f"{receiver.url}/error", **runner):
        emit_file_stored(n=4)
        emit_file_stored(n=5)
        first = dispatch_due_deliveries()
        second = dispatch_due_deliveries(now=timezone.now() + timedelta(days=1))

    assert (first.retried, second.dead) == (2, 2)
    assert samples.delta("portal_outbox_deliveries_total", outcome="delivered") == 3
    assert samples.delta("portal_outbox_deliveries_total", outcome="retried") == 2
    assert samples.delta("portal_outbox_deliveries_total", outcome="dead") == 2


def test_readiness_answers_are_counted_per_check(client, fs_storage, storage_root, samples):
    assert client.get("/ready").status_code == 200
    storage_root.rmdir()
    assert client.get("/ready").status_code == 503

    assert samples.delta("portal_readiness_checks_total", check="database", result="ok") == 2
    assert samples.delta("portal_readiness_checks_total", check="storage", result="ok") == 1
    assert (
        samples.delta("portal_readiness_checks_total", check="storage", result="unavailable") == 1
    )
