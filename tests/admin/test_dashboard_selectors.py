"""Every figure of the cleanup dashboard, from its selector (portal.selectors.dashboard)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import override_settings

from portal.models import CleanupControl, CleanupRun, OutboxDelivery, OutboxEvent, UploadSession
from portal.selectors.dashboard import (
    Totals,
    cleanup_dashboard,
    daily_series,
    dead_deliveries,
    grace_backlog,
    last_live_run,
    live_totals,
    step_rows,
)
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)


def run(*, ago, took=timedelta(seconds=2), dry_run=False, status="success", **total):
    started = NOW - ago
    counts = {"total": {"expired": 0, "deleted": 0, "failed": 0, **total}} if total else {}
    return CleanupRun.objects.create(
        trigger="beat",
        dry_run=dry_run,
        status=status,
        started_at=started,
        finished_at=started + took if took is not None else None,
        counts=counts,
    )


def test_last_live_run_skips_dry_and_skipped_runs():
    live = run(ago=timedelta(hours=3), took=timedelta(seconds=90), deleted=1)
    run(ago=timedelta(hours=2), dry_run=True, deleted=5)
    run(ago=timedelta(hours=1), status="skipped")

    tile = last_live_run()

    assert (tile.id, tile.status, tile.trigger) == (str(live.pk), "success", "beat")
    assert tile.duration == timedelta(seconds=90)
    assert tile.requested_by == ""


def test_no_live_run_yet():
    run(ago=timedelta(hours=1), dry_run=True)

    assert last_live_run() is None


def test_totals_sum_live_runs_of_the_window_only():
    run(ago=timedelta(hours=1), deleted=3, failed=1, expired=2, bytes_reclaimed=1000)
    run(ago=timedelta(hours=23), deleted=4, bytes_reclaimed=24)
    run(ago=timedelta(hours=25), deleted=100)  # outside the window
    run(ago=timedelta(hours=2), dry_run=True, deleted=50)  # a dry run deletes nothing
    run(ago=timedelta(hours=2), took=None, status="running")  # no counts yet

    totals = live_totals(since=NOW - timedelta(hours=24))

    assert totals == Totals(runs=3, expired=2, deleted=7, failed=1, bytes_reclaimed=1024)


def test_totals_count_runs_without_bytes_reclaimed_as_zero_bytes():
    run(ago=timedelta(hours=1), deleted=3)

    assert live_totals(since=NOW - timedelta(days=1)).bytes_reclaimed == 0


@override_settings(PORTAL_CLEANUP_GRACE_MINUTES=30)
def test_backlog_counts_parts_of_sessions_finished_within_the_grace_period():
    waiting = make_session(
        status=UploadSession.Status.COMPLETE, parts=2, finished_at=NOW - timedelta(minutes=10)
    )
    aborted = make_session(
        status=UploadSession.Status.ABORTED, parts=1, finished_at=NOW - timedelta(minutes=29)
    )
    make_session(status=UploadSession.Status.FAILED, parts=3, finished_at=NOW - timedelta(hours=2))
    make_session(status=UploadSession.Status.IN_PROGRESS, parts=4, last_activity_at=NOW)

    backlog = grace_backlog(now=NOW)

    assert (backlog.sessions, backlog.parts) == (2, 3)
    parts = [*waiting.parts.all(), *aborted.parts.all()]
    assert backlog.bytes == sum(part.size_bytes for part in parts)
    assert backlog.grace == timedelta(minutes=30)


def test_dead_deliveries_count_failed_deliveries_only():
    event = OutboxEvent.objects.create(
        event_type="file.stored",
        payload={},
        aggregate_type="file",
        aggregate_id="1",
        idempotency_key="k1",
    )
    for number, status in enumerate(("failed", "failed", "pending", "delivered")):
        OutboxDelivery.objects.create(event=event, destination=f"endpoint:{number}", status=status)

    assert dead_deliveries() == 2


def test_daily_series_has_thirty_days_oldest_first_with_zeros_and_the_longest_run():
    run(ago=timedelta(minutes=30), took=timedelta(seconds=5), deleted=2, failed=1)
    run(ago=timedelta(hours=2), took=timedelta(seconds=40), deleted=3)
    run(ago=timedelta(days=1), deleted=7)
    run(ago=timedelta(days=1, hours=1), dry_run=True, deleted=99)
    run(ago=timedelta(days=40), deleted=1000)  # before the window

    days = daily_series(now=NOW)

    assert len(days) == 30
    assert (days[0].day, days[-1].day) == (date(2026, 1, 2), date(2026, 1, 31))
    today, yesterday = days[-1], days[-2]
    assert (today.runs, today.deleted, today.failed) == (2, 5, 1)
    assert today.max_duration == timedelta(seconds=40)
    assert (yesterday.runs, yesterday.deleted) == (1, 7)
    assert (days[0].runs, days[0].deleted, days[0].max_duration) == (0, 0, None)


def test_step_rows_read_every_column_and_mark_what_was_not_recorded():
    cleanup = run(ago=timedelta(hours=1))
    cleanup.counts = {
        "stale_sessions": {"expired": 2, "duration_ms": 12},
        "orphan_temp_parts": {"deleted": 5, "failed": 1, "foreign": 0, "bytes_reclaimed": 80},
        "failed_sessions": {"deleted": 3},  # recorded before foreign and durations were
        "total": {"expired": 2, "deleted": 8, "failed": 1},
    }

    rows = step_rows(cleanup)

    assert [row.step for row in rows] == ["stale_sessions", "orphan_temp_parts", "failed_sessions"]
    assert rows[0].counts["expired"] == 2 and rows[0].counts["duration_ms"] == 12
    assert rows[1].counts["bytes_reclaimed"] == 80 and rows[1].counts["foreign"] == 0
    assert rows[2].counts["deleted"] == 3
    assert rows[2].counts["foreign"] is None  # not recorded, shown as such


def test_dashboard_brings_the_switches_and_settings_together():
    control = CleanupControl.current()
    control.paused = True
    control.save()
    run(ago=timedelta(hours=1), deleted=1)

    data = cleanup_dashboard(now=NOW)

    assert data.paused is True and data.dry_run_forced is False and data.enabled is True
    assert data.last_24h.deleted == 1
    assert data.last_live_run is not None
    assert len(data.days) == 30
    assert "PORTAL_CLEANUP_GRACE_MINUTES" in data.settings


@override_settings(PORTAL_CLEANUP_DRY_RUN=True)
def test_dry_run_setting_counts_as_forced():
    assert cleanup_dashboard(now=NOW).dry_run_forced is True


def test_last_live_run_names_the_user_who_asked_for_it():
    cleanup = run(ago=timedelta(hours=1))
    CleanupRun.objects.filter(pk=cleanup.pk).update(requested_by=make_user("operator"))

    assert last_live_run().requested_by == "operator"
