"""What operators see of cleanup: its health (``/health/cleanup``) and the settings in force."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from portal import conf, schedule
from portal.models import CleanupControl, CleanupRun
from portal.selectors.compliance import retention_health

# /health/cleanup fails when no run succeeded within this many intervals.
HEALTHY_WITHIN_INTERVALS = 3


@dataclass(frozen=True)
class CleanupHealth:
    """The state of cleanup for ``/health/cleanup``: no settings values, no errors' text."""

    healthy: bool
    last_run: dict | None
    last_success_at: datetime | None
    next_run_at: datetime | None
    deleted_24h: int
    failed_24h: int
    expired_24h: int
    paused: bool
    dry_run_forced: bool
    interval_minutes: float
    retention: dict  # SPEC §11: {overdue_files, on_hold, next_expiry_at}

    def as_dict(self) -> dict:
        return {
            "healthy": self.healthy,
            "last_run": self.last_run,
            "last_success_at": _iso(self.last_success_at),
            "next_run_at": _iso(self.next_run_at),
            "last_24h": {
                "deleted": self.deleted_24h,
                "failed": self.failed_24h,
                "expired": self.expired_24h,
            },
            "paused": self.paused,
            "dry_run_forced": self.dry_run_forced,
            "interval_minutes": self.interval_minutes,
            "retention": self.retention,
        }


def cleanup_health(*, now=None) -> CleanupHealth:
    """Healthy when a live run (not a dry run, not skipped) succeeded within the last
    three cleanup intervals, or, before any live run ever succeeded, while the cleanup
    schedule is younger than three intervals (a fresh deploy)."""
    now = now or timezone.now()
    interval = schedule.interval(schedule.CLEANUP)  # the one beat runs, else the setting
    window = HEALTHY_WITHIN_INTERVALS * interval
    control = CleanupControl.current()
    last = CleanupRun.objects.order_by("-started_at").first()
    last_success_at = (
        CleanupRun.objects.filter(status=CleanupRun.Status.SUCCESS, dry_run=False)
        .order_by("-started_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    task = schedule.periodic_task(schedule.CLEANUP)
    if last_success_at:
        healthy = last_success_at >= now - window
    else:
        healthy = task is not None and _schedule_created_at(task) >= now - window
    totals = {"deleted": 0, "failed": 0, "expired": 0}
    recent = CleanupRun.objects.filter(started_at__gte=now - timedelta(hours=24), dry_run=False)
    for counts in recent.values_list("counts", flat=True).iterator():
        for name in totals:
            totals[name] += (counts or {}).get("total", {}).get(name, 0)
    return CleanupHealth(
        healthy=healthy,
        last_run=_run_summary(last) if last else None,
        last_success_at=last_success_at,
        next_run_at=schedule.next_run(schedule.CLEANUP),
        deleted_24h=totals["deleted"],
        failed_24h=totals["failed"],
        expired_24h=totals["expired"],
        paused=control.paused or not conf.cleanup_enabled(),
        dry_run_forced=control.force_dry_run or conf.cleanup_dry_run(),
        interval_minutes=interval.total_seconds() / 60,
        retention=retention_health(now=now),
    )


def _run_summary(run: CleanupRun) -> dict:
    return {
        "id": str(run.pk),
        "status": run.status,
        "trigger": run.trigger,
        "dry_run": run.dry_run,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "counts": run.counts,
        "errors": len(run.errors),
    }


def _schedule_created_at(task) -> datetime:
    """When the schedule came into force. PeriodicTask records no creation time, and beat
    saves the row (so ``date_changed`` moves) at every send: a schedule that never ran
    was last changed when it was created; one that ran was created one interval before
    each of its ``total_run_count`` sends."""
    if task.last_run_at is None:
        return task.start_time or task.date_changed
    return task.last_run_at - task.total_run_count * task.interval.schedule.run_every


def effective_settings() -> dict:
    """The cleanup settings and switches in force now, for the admin (no secrets)."""
    control = CleanupControl.current()
    retention, outbox_retention = conf.failed_session_retention(), conf.outbox_retention()
    interval = schedule.interval(schedule.CLEANUP)
    return {
        "PORTAL_CLEANUP_ENABLED": conf.cleanup_enabled(),
        "PORTAL_CLEANUP_DRY_RUN": conf.cleanup_dry_run(),
        "paused (admin switch)": control.paused,
        "force dry run (admin switch)": control.force_dry_run,
        # What beat runs (portal-cleanup), which an operator may have re-timed in the admin.
        "interval in minutes (beat schedule)": interval.total_seconds() / 60,
        "PORTAL_SESSION_TTL_HOURS": conf.session_ttl().total_seconds() / 3600,
        "PORTAL_CLEANUP_GRACE_MINUTES": conf.cleanup_grace().total_seconds() / 60,
        "PORTAL_CLEANUP_BATCH_SIZE": conf.cleanup_batch_size(),
        "PORTAL_FAILED_SESSION_RETENTION_DAYS": retention.days if retention else 0,
        "PORTAL_OUTBOX_RETENTION_DAYS": outbox_retention.days if outbox_retention else 0,
        "PORTAL_STORAGE_BACKEND": conf.storage_backend(),
        "PORTAL_TEMP_PREFIX": conf.temp_prefix(),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
