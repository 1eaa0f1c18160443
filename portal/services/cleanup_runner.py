"""One cleanup run (SPEC §6): every step in order, recorded as a ``CleanupRun``.

The runner resolves the ``CleanupContext`` once, runs the steps of
``portal.services.cleanup`` with it, totals their ``StepResult`` counts, records
the run and sends ``cleanup_finished``. Rendering is the callers' business
(the ``run_cleanup`` command, the admin).
"""

import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

import structlog
from django.db import DatabaseError

from portal.exceptions import PortalError
from portal.models import CleanupRun
from portal.services.cleanup import steps_for
from portal.services.cleanup_context import (
    MAX_RECORDED_ERRORS,
    CleanupContext,
    StepResult,
    cleanup_context,
)
from portal.signals import cleanup_finished

log = structlog.get_logger(__name__)

# A run still "running" after this long belongs to a process that died.
ABANDONED_RUN_AFTER = timedelta(hours=6)

__all__ = ["CleanupContext", "CleanupReport", "StepResult", "run_cleanup"]


@dataclass(frozen=True)
class CleanupReport:
    """What one ``run_cleanup`` did; also stored as a ``CleanupRun``."""

    run_id: str
    trigger: str
    status: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    counts: dict = field(default_factory=dict)  # step → {count name: n}, plus "total"
    errors: tuple[dict, ...] = ()
    skipped_reason: str = ""  # "disabled" or "paused" when skipped

    @property
    def ok(self) -> bool:
        return self.status in (CleanupRun.Status.SUCCESS, CleanupRun.Status.SKIPPED)

    def as_dict(self) -> dict:
        """JSON-able: times as ISO 8601, plus ``ok``."""
        data = asdict(self)
        data.update(
            ok=self.ok,
            started_at=self.started_at.isoformat(),
            finished_at=self.finished_at.isoformat(),
            errors=list(self.errors),
        )
        return data


def run_cleanup(
    *, trigger, now=None, dry_run=None, batch_size=None, storage=None, user=None, cycle="all"
) -> CleanupReport:
    """Run every step in order and record the run as a ``CleanupRun`` (by ``user``, if any).

    ``cycle`` picks the steps (``portal.services.cleanup.steps_for``): ``light``, ``deep``
    or ``all``.

    ``PORTAL_CLEANUP_ENABLED=false`` or the paused switch records a skipped run and
    changes nothing. ``PORTAL_CLEANUP_DRY_RUN``, the force-dry-run switch or
    ``dry_run=True`` make it a dry run (no argument can override the switches). A
    step that fails is recorded and the run goes on with the next one.
    """
    ctx = cleanup_context(now=now, dry_run=dry_run, batch_size=batch_size, storage=storage)
    steps = steps_for(cycle)
    started = time.monotonic()
    _close_abandoned_runs(ctx.now)
    run = CleanupRun.objects.create(
        trigger=trigger,
        dry_run=ctx.dry_run,
        started_at=ctx.now,
        requested_by=user,
        status=CleanupRun.Status.SKIPPED if ctx.skipped_reason else CleanupRun.Status.RUNNING,
    )
    ctx = replace(ctx, run_id=run.pk)  # retention's proofs of deletion name their run
    with structlog.contextvars.bound_contextvars(run_id=str(run.pk)):
        if ctx.skipped_reason:
            log.info("cleanup.skipped", trigger=trigger, reason=ctx.skipped_reason)
            return _finish(run, ctx, started, {}, [], skipped_reason=ctx.skipped_reason)
        log.info("cleanup.started", trigger=trigger, dry_run=ctx.dry_run, cycle=cycle)
        results, errors = {}, []
        try:
            for name, step in steps.items():
                try:
                    results[name] = step(ctx)
                except (PortalError, DatabaseError) as exc:
                    log.exception("cleanup.step_failed", step=name)
                    errors.append({"step": name, "error": f"{exc.__class__.__name__}: {exc}"})
                    continue
                errors.extend(
                    {"step": name, "item": error.item, "error": error.error}
                    for error in results[name].errors
                )
        except BaseException:
            # An unexpected error still closes the audit record before it propagates.
            _finish(run, ctx, started, results, errors, status=CleanupRun.Status.FAILED)
            raise
        return _finish(run, ctx, started, results, errors, status=_status(results, steps))


def _status(results: dict[str, StepResult], steps: dict) -> str:
    if not results:
        return CleanupRun.Status.FAILED
    if len(results) < len(steps) or any(result.failed for result in results.values()):
        return CleanupRun.Status.PARTIAL
    return CleanupRun.Status.SUCCESS


def _finish(run, ctx, started, results, errors, *, status=None, skipped_reason=""):
    duration_ms = round((time.monotonic() - started) * 1000)
    counts = {name: result.counts() for name, result in results.items()}
    if results:
        counts["total"] = {
            name: sum(result.counts()[name] for result in results.values())
            for name in StepResult.COUNTS
        }
    run.status = status or run.status
    run.finished_at = ctx.now + timedelta(milliseconds=duration_ms)
    run.counts = counts
    run.errors = errors[:MAX_RECORDED_ERRORS]
    run.save(update_fields=["status", "finished_at", "counts", "errors", "updated_at"])
    report = CleanupReport(
        run_id=str(run.pk),
        trigger=run.trigger,
        status=run.status,
        dry_run=run.dry_run,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_ms=duration_ms,
        counts=counts,
        errors=tuple(run.errors),
        skipped_reason=skipped_reason,
    )
    if status:
        log.info(
            "cleanup.finished",
            status=run.status,
            dry_run=run.dry_run,
            duration_ms=duration_ms,
            counts=counts,
            errors=len(errors),
        )
    cleanup_finished.send(sender=CleanupRun, run=run)
    return report


def _close_abandoned_runs(now) -> None:
    abandoned = CleanupRun.objects.filter(
        status=CleanupRun.Status.RUNNING, started_at__lt=now - ABANDONED_RUN_AFTER
    ).update(
        status=CleanupRun.Status.FAILED,
        finished_at=now,
        errors=[{"step": "run", "error": "abandoned: its process stopped before finishing"}],
        updated_at=now,
    )
    if abandoned:
        log.warning("cleanup.runs_abandoned", count=abandoned)
