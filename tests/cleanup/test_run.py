"""run_cleanup as a whole, and its thin callers: the command and the Celery task."""

import io
import json
import threading
from datetime import timedelta

import pytest
import structlog
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from portal.exceptions import StorageUnavailable
from portal.management.commands.run_cleanup import render_json, render_summary
from portal.models import (
    CleanupControl,
    CleanupRun,
    OutboxEvent,
    UploadFile,
    UploadPart,
    UploadSession,
    new_id,
)
from portal.services.cleanup import STEPS, run_cleanup
from portal.services.cleanup_context import MAX_RECORDED_ERRORS, StepResult
from portal.services.reconcile import ReconcileResult
from portal.tasks import portal_cleanup_task
from tests.cleanup.helpers import GRACE, TTL, RefusingStorage, temp_keys
from tests.factories import make_session

pytestmark = pytest.mark.django_db
Status = UploadSession.Status


def build_backlog(storage, now):
    """One of everything cleanup acts on, and one of everything it must leave alone."""
    make_session(
        status=Status.IN_PROGRESS, parts=2, storage=storage, last_activity_at=now - 2 * TTL
    )
    make_session(status=Status.COMPLETE, parts=3, storage=storage, finished_at=now - 2 * GRACE)
    make_session(
        status=Status.FAILED, parts=1, storage=storage, finished_at=now - timedelta(days=40)
    )
    make_session(status=Status.IN_PROGRESS, parts=2, storage=storage, last_activity_at=now)
    storage.write_temp_part(new_id(), 1, io.BytesIO(b"x"), max_bytes=1)
    OutboxEvent.objects.create(
        event_type="file.stored",
        payload={},
        aggregate_type="file",
        aggregate_id="1",
        idempotency_key="old",
        created_at=now - timedelta(days=30),
    )


def snapshot(storage):
    return {
        "sessions": sorted(UploadSession.objects.values_list("pk", "status", "finished_at")),
        "files": sorted(UploadFile.objects.values_list("pk", "status")),
        "parts": sorted(UploadPart.objects.values_list("pk", "cleanup_claimed_until")),
        "events": OutboxEvent.objects.count(),
        "objects": temp_keys(storage),
    }


def counts(**numbers):
    """A step's counts: every count name, zero unless given."""
    return {name: numbers.get(name, 0) for name in StepResult.COUNTS}


def without_durations(counts):
    """Recorded counts minus each step's ``duration_ms``: a timing, not a count."""
    return {
        step: {name: n for name, n in numbers.items() if name != "duration_ms"}
        for step, numbers in counts.items()
    }


PART_BYTES = len(f"part 1 of {new_id()}")  # each part make_part writes

EXPECTED_COUNTS = {
    "stale_sessions": counts(expired=1),
    "orphan_temp_parts": counts(deleted=4, bytes_reclaimed=4 * PART_BYTES),
    "failed_sessions": counts(deleted=1),
    "expiring_files": counts(),  # retention (SPEC §10): tests/retention
    "expired_files": counts(),
    "orphan_storage_objects": counts(deleted=1, bytes_reclaimed=1),
    # Reconciliation (SPEC §11): tests/compliance. No final objects here.
    "reconcile_storage": {
        **counts(),
        **dict.fromkeys(ReconcileResult.OWN_COUNTS, 0),
        **{name: [] for name in ReconcileResult.SAMPLES},
    },
    "outbox": counts(deleted=1),
    "total": counts(expired=1, deleted=7, bytes_reclaimed=4 * PART_BYTES + 1),
}


def test_run_performs_every_step_and_records_a_successful_run(storage):
    build_backlog(storage, timezone.now())
    # Objects are "older than grace" for the sweep when the clock is moved on.
    now = timezone.now() + 2 * GRACE
    UploadSession.objects.filter(last_activity_at__gt=now - TTL).update(last_activity_at=now)

    report = run_cleanup(trigger="command", now=now)

    assert (report.status, report.ok, report.dry_run) == ("success", True, False)
    assert without_durations(report.counts) == EXPECTED_COUNTS
    run = CleanupRun.objects.get(pk=report.run_id)
    assert run.counts == report.counts
    assert all(isinstance(run.counts[step]["duration_ms"], int) for step in STEPS)
    assert "duration_ms" not in run.counts["total"]
    assert (run.trigger, run.status, run.started_at, without_durations(run.counts), run.errors) == (
        "command",
        "success",
        now,
        EXPECTED_COUNTS,
        [],
    )
    assert run.finished_at >= run.started_at
    # Left: the live session's parts and the expired session's (still in grace).
    assert len(temp_keys(storage)) == 4


def test_dry_run_reports_what_a_live_run_does_and_changes_nothing(storage):
    build_backlog(storage, timezone.now())
    now = timezone.now() + 2 * GRACE
    UploadSession.objects.filter(last_activity_at__gt=now - TTL).update(last_activity_at=now)
    before = snapshot(storage)

    dry = run_cleanup(trigger="command", now=now, dry_run=True)

    assert snapshot(storage) == before
    assert (dry.status, dry.dry_run) == ("success", True)
    live = run_cleanup(trigger="command", now=now)
    assert without_durations(dry.counts) == without_durations(live.counts) == EXPECTED_COUNTS


@override_settings(PORTAL_CLEANUP_ENABLED=False)
def test_disabled_cleanup_records_a_skipped_run_and_changes_nothing(storage):
    now = timezone.now() + 2 * GRACE
    build_backlog(storage, now - 2 * GRACE)
    before = snapshot(storage)

    report = run_cleanup(trigger="beat", now=now)

    assert (report.status, report.skipped_reason, report.ok) == ("skipped", "disabled", True)
    assert snapshot(storage) == before
    assert CleanupRun.objects.get().status == "skipped"


def test_paused_switch_skips_the_next_run(fs_storage):
    CleanupControl.objects.update_or_create(pk=1, defaults={"paused": True})
    make_session(status=Status.INIT, last_activity_at=timezone.now() - 2 * TTL)

    report = run_cleanup(trigger="beat")

    assert (report.status, report.skipped_reason) == ("skipped", "paused")
    assert UploadSession.objects.active().count() == 1


@pytest.mark.parametrize(
    ("switch", "setting"), [(True, False), (False, True)], ids=["admin-switch", "setting"]
)
def test_forced_dry_run_wins_over_a_live_request(fs_storage, switch, setting):
    CleanupControl.objects.update_or_create(pk=1, defaults={"force_dry_run": switch})
    make_session(status=Status.INIT, last_activity_at=timezone.now() - 2 * TTL)

    with override_settings(PORTAL_CLEANUP_DRY_RUN=setting):
        report = run_cleanup(trigger="admin", dry_run=False)

    assert report.dry_run is True
    assert without_durations(report.counts)["stale_sessions"] == counts(expired=1)
    assert UploadSession.objects.active().count() == 1


def test_failing_step_is_recorded_and_the_run_goes_on(fs_storage, log_events):
    class ListingFails(RefusingStorage):
        def iter_temp_objects(self, *, older_than):
            raise StorageUnavailable("cannot list tmp/: ConnectTimeoutError")

    make_session(status=Status.INIT, last_activity_at=timezone.now() - 2 * TTL)
    broken = ListingFails(fs_storage, lambda key: False)

    report = run_cleanup(trigger="beat", storage=broken)

    assert report.status == "partial"
    assert without_durations(report.counts)["stale_sessions"] == counts(expired=1)
    assert "orphan_storage_objects" not in report.counts
    assert without_durations(report.counts)["outbox"] == counts()
    assert report.errors == (
        {
            "step": "orphan_storage_objects",
            "error": "StorageUnavailable: cannot list tmp/: ConnectTimeoutError",
        },
    )
    assert log_events("cleanup.step_failed")[0]["step"] == "orphan_storage_objects"


def test_item_failures_make_the_run_partial_with_a_bounded_error_list(fs_storage):
    now = timezone.now()
    for _ in range(MAX_RECORDED_ERRORS + 10):
        make_session(
            status=Status.COMPLETE, parts=1, storage=fs_storage, finished_at=now - 2 * GRACE
        )

    report = run_cleanup(trigger="beat", now=now, storage=RefusingStorage(fs_storage, bool))

    assert report.status == "partial"
    assert without_durations(report.counts)["orphan_temp_parts"] == counts(
        failed=MAX_RECORDED_ERRORS + 10
    )
    assert len(report.errors) == MAX_RECORDED_ERRORS
    assert len(CleanupRun.objects.get().errors) == MAX_RECORDED_ERRORS


def test_every_step_failing_fails_the_run(fs_storage, monkeypatch):
    def unavailable(ctx):
        raise StorageUnavailable("down")

    from portal.services import cleanup

    for name in cleanup.STEPS:
        monkeypatch.setitem(cleanup.STEPS, name, unavailable)

    report = run_cleanup(trigger="beat")

    assert (report.status, report.ok, len(report.errors)) == ("failed", False, len(cleanup.STEPS))


def test_run_logs_start_batches_and_finish_with_its_run_id(fs_storage, log_events):
    now = timezone.now()
    make_session(status=Status.COMPLETE, parts=2, storage=fs_storage, finished_at=now - 2 * GRACE)

    report = run_cleanup(trigger="command", now=now)

    started, deleted, finished = (
        log_events("cleanup.started"),
        log_events("cleanup.item_deleted"),
        log_events("cleanup.finished"),
    )
    assert started[0]["trigger"] == "command"
    assert deleted[0]["count"] == 2
    assert finished[0]["status"] == "success"
    assert finished[0]["counts"]["total"]["deleted"] == 2
    assert isinstance(finished[0]["duration_ms"], int)
    assert {e["run_id"] for e in started + deleted + finished} == {report.run_id}


def test_storage_log_lines_from_the_deleting_thread_carry_the_run_id(fs_storage, log_events):
    # Part objects are deleted in a worker thread; the adapter's own log lines (the S3
    # adapter logs refused keys) must still name the run.
    class LoggingStorage(RefusingStorage):
        def delete_many(self, keys):
            structlog.get_logger("tests").info(
                "storage.deleting", thread=threading.current_thread().name
            )
            return super().delete_many(keys)

    now = timezone.now()
    make_session(status=Status.COMPLETE, parts=2, storage=fs_storage, finished_at=now - 2 * GRACE)

    report = run_cleanup(
        trigger="command", now=now, storage=LoggingStorage(fs_storage, refuse=lambda key: False)
    )

    lines = [line for line in log_events("storage.deleting") if line["thread"] != "MainThread"]
    assert lines
    assert {line["run_id"] for line in lines} == {report.run_id}


def test_a_run_left_running_by_a_dead_process_is_closed_as_failed(fs_storage):
    now = timezone.now()
    dead = CleanupRun.objects.create(trigger="beat", started_at=now - timedelta(days=1))

    run_cleanup(trigger="beat", now=now)

    dead.refresh_from_db()
    assert (dead.status, dead.finished_at) == ("failed", now)
    assert "abandoned" in dead.errors[0]["error"]


def test_report_renders_as_summary_json_and_dict(fs_storage):
    report = run_cleanup(trigger="command")

    assert render_summary(report).startswith(f"Cleanup success in {report.duration_ms} ms")
    assert "stale_sessions: expired 0, deleted 0" in render_summary(report)
    assert json.loads(render_json(report)) == report.as_dict()
    assert report.as_dict()["counts"]["total"] == counts()


# -- thin callers -------------------------------------------------------------------


def test_command_prints_a_summary_and_exits_zero(fs_storage, capsys):
    make_session(status=Status.INIT, last_activity_at=timezone.now() - 2 * TTL)

    call_command("run_cleanup")

    out = capsys.readouterr().out
    assert out.startswith("Cleanup success")
    assert "stale_sessions: expired 1" in out
    assert CleanupRun.objects.get().trigger == "command"


def test_command_dry_run_prints_json_and_changes_nothing(fs_storage, capsys):
    make_session(status=Status.INIT, last_activity_at=timezone.now() - 2 * TTL)

    call_command("run_cleanup", "--dry-run", "--json")

    report = json.loads(capsys.readouterr().out)
    assert (report["dry_run"], without_durations(report["counts"])["stale_sessions"]) == (
        True,
        counts(expired=1),
    )
    assert UploadSession.objects.active().count() == 1


def test_command_fails_when_an_item_failed(fs_storage, capsys):
    # A part row pointing outside the temp prefix: the adapter refuses to delete it.
    session = make_session(status=Status.COMPLETE, parts=1, finished_at=timezone.now() - 2 * GRACE)
    session.parts.update(temp_storage_key="files/not-a-temp-object")

    with pytest.raises(CommandError, match="cleanup finished partial"):
        call_command("run_cleanup")

    assert "orphan_temp_parts files/not-a-temp-object" in capsys.readouterr().out


def test_task_runs_cleanup_as_beat_and_returns_the_report(fs_storage):
    result = portal_cleanup_task.apply().get()

    assert (result["trigger"], result["status"]) == ("beat", "success")
    assert CleanupRun.objects.get(pk=result["run_id"]).trigger == "beat"
