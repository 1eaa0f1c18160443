"""What the cleanup dashboard in the admin shows (read-only; issue 17, PEP 0026).

Every figure on the dashboard comes from one function here. Each reads through
an index whatever the table sizes (the plans are in PEP 0026):

- the last live run: ``portal_cleanup_live_idx`` (live runs by start, newest first);
- the last 24 hours and the 30-day series: a range of ``portal_cleanup_started_idx``,
  summed in the database from the runs' ``counts["total"]``;
- the backlog waiting for grace: a range of ``portal_session_terminal_idx`` per
  terminal status, joined to the parts through their ``(session, part_number)`` index;
- dead deliveries: ``portal_delivery_dead_idx`` (failed deliveries only).

Live runs are the runs that were neither dry runs nor skipped.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import (
    BigIntegerField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Q,
    Sum,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from portal import conf
from portal.models import CleanupControl, CleanupRun, OutboxDelivery, UploadPart, UploadSession
from portal.selectors.cleanup import cleanup_health, effective_settings

SERIES_DAYS = 30
RECENT = timedelta(hours=24)
# The per-step numbers a run page shows, in its columns' order (the runner's counts).
STEP_COLUMNS = ("expired", "deleted", "failed", "foreign", "bytes_reclaimed", "duration_ms")


@dataclass(frozen=True)
class RunTile:
    id: str
    status: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    duration: timedelta | None
    requested_by: str  # the user who asked for it, "" when beat or a command started it


@dataclass(frozen=True)
class Totals:
    runs: int = 0
    expired: int = 0
    deleted: int = 0
    failed: int = 0
    bytes_reclaimed: int = 0


@dataclass(frozen=True)
class Backlog:
    """Parts of finished sessions that wait out the grace period before cleanup deletes them."""

    sessions: int
    parts: int
    bytes: int
    grace: timedelta


@dataclass(frozen=True)
class Day:
    day: date
    runs: int
    deleted: int
    failed: int
    max_duration: timedelta | None


@dataclass(frozen=True)
class StepRow:
    step: str
    counts: dict  # STEP_COLUMNS → int or None (not recorded)


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    healthy: bool
    last_live_run: RunTile | None
    next_run_at: datetime | None
    enabled: bool
    paused: bool
    dry_run_forced: bool  # by PORTAL_CLEANUP_DRY_RUN or the admin switch
    last_24h: Totals
    backlog: Backlog
    dead_deliveries: int
    days: tuple[Day, ...]
    settings: dict
    retention: dict  # {overdue_files, on_hold, next_expiry_at}, as /health/cleanup says


def cleanup_dashboard(*, now=None) -> Dashboard:
    """Everything the dashboard shows, as of ``now``."""
    now = now or timezone.now()
    health = cleanup_health(now=now)
    control = CleanupControl.current()
    return Dashboard(
        now=now,
        healthy=health.healthy,
        last_live_run=last_live_run(),
        next_run_at=health.next_run_at,
        enabled=conf.cleanup_enabled(),
        paused=control.paused,
        dry_run_forced=conf.cleanup_dry_run() or control.force_dry_run,
        last_24h=live_totals(since=now - RECENT),
        backlog=grace_backlog(now=now),
        dead_deliveries=dead_deliveries(),
        days=daily_series(now=now),
        settings=effective_settings(),
        retention=health.retention,
    )


def live_runs():
    return CleanupRun.objects.filter(dry_run=False).exclude(status=CleanupRun.Status.SKIPPED)


def last_live_run() -> RunTile | None:
    run = live_runs().order_by("-started_at").first()
    if run is None:
        return None
    return RunTile(
        id=str(run.pk),
        status=run.status,
        trigger=run.trigger,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration=run.duration,
        requested_by=requested_by(run),
    )


def requested_by(run: CleanupRun) -> str:
    """The user who asked for ``run`` from the admin; "" for beat and commands."""
    return run.requested_by.get_username() if run.requested_by_id else ""


def _total(name: str):
    """The run's ``counts["total"][name]`` as a number, 0 where it was not recorded."""
    return Coalesce(Cast(KT(f"counts__total__{name}"), BigIntegerField()), 0)


def live_totals(*, since: datetime) -> Totals:
    """Sums over the live runs started since ``since``."""
    sums = (
        live_runs()
        .filter(started_at__gte=since)
        .aggregate(
            runs=Count("pk"),
            **{name: Coalesce(Sum(_total(name)), 0) for name in ("expired", "deleted", "failed")},
            bytes_reclaimed=Coalesce(Sum(_total("bytes_reclaimed")), 0),
        )
    )
    return Totals(**sums)


def grace_backlog(*, now: datetime) -> Backlog:
    """Parts of sessions finished less than the grace period ago: kept, for now, on purpose."""
    grace = conf.cleanup_grace()
    totals = Counter()
    # One status at a time: with all three, PostgreSQL drops the status condition the
    # partial index already implies and walks the whole index for the finished_at range;
    # with one, it is a short range scan of (status, finished_at).
    for status in UploadSession.TERMINAL_STATUSES:
        waiting = UploadSession.objects.filter(status=status, finished_at__gte=now - grace)
        totals.update(
            UploadPart.objects.filter(session__in=waiting).aggregate(
                sessions=Count("session", distinct=True),
                parts=Count("pk"),
                bytes=Coalesce(Sum("size_bytes"), 0),
            )
        )
    return Backlog(
        sessions=totals["sessions"], parts=totals["parts"], bytes=totals["bytes"], grace=grace
    )


def dead_deliveries() -> int:
    return OutboxDelivery.objects.dead().count()


def daily_series(*, now: datetime, days: int = SERIES_DAYS) -> tuple[Day, ...]:
    """One entry per calendar day (current time zone) of the last ``days``, oldest first;
    days without live runs are zeros."""
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    rows = (
        live_runs()
        .filter(started_at__gte=since)
        .annotate(day=TruncDate("started_at"))
        .values("day")
        .annotate(
            runs=Count("pk"),
            deleted=Coalesce(Sum(_total("deleted")), 0),
            failed=Coalesce(Sum(_total("failed")), 0),
            max_duration=Max(duration, filter=Q(finished_at__isnull=False)),
        )
        .order_by("day")
    )
    by_day = {row["day"]: row for row in rows}
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {})
        series.append(
            Day(
                day=day,
                runs=row.get("runs", 0),
                deleted=row.get("deleted", 0),
                failed=row.get("failed", 0),
                max_duration=row.get("max_duration"),
            )
        )
    return tuple(series)


def step_rows(run: CleanupRun) -> tuple[StepRow, ...]:
    """The run's per-step counts in the run page's columns, steps in the order they ran;
    None where a run recorded before a count existed lacks it."""
    rows = []
    for step, counts in (run.counts or {}).items():
        if step == "total":
            continue
        rows.append(StepRow(step=step, counts={name: counts.get(name) for name in STEP_COLUMNS}))
    return tuple(rows)
