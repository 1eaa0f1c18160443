"""What every cleanup step takes (``CleanupContext``) and returns (``StepResult``).

The context is resolved once — clock, settings, storage adapter and the operator's
switches — by ``cleanup_context()``, the one function that reads them. The runner
builds it once per run; a step called on its own builds it through the same
function, so the admin's pause and force-dry-run switches hold for it too.
"""

import functools
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from portal import conf
from portal.logs import get_logger
from portal.models import CleanupControl
from portal.storage import StorageAdapter, get_storage

log = get_logger(__name__)

# A step records at most this many item errors and foreign keys; the counts stay exact.
MAX_RECORDED_ERRORS = 50
FOREIGN_SAMPLE_SIZE = 20


@dataclass(frozen=True)
class CleanupContext:
    now: datetime
    dry_run: bool
    batch_size: int
    storage: StorageAdapter
    grace: timedelta
    session_ttl: timedelta
    failed_session_retention: timedelta | None  # None: pruning is off
    outbox_retention: timedelta | None  # None: pruning is off
    retention_workers: int  # connections each retention step works on at once
    skipped_reason: str = ""  # "disabled" (setting) or "paused" (admin switch)
    dry_run_forced: bool = False  # by PORTAL_CLEANUP_DRY_RUN or the admin switch
    run_id: object = None  # the CleanupRun, once the runner has recorded it


def cleanup_context(*, now=None, dry_run=None, batch_size=None, storage=None) -> CleanupContext:
    """The context of one run: arguments where given, settings and switches otherwise.

    ``dry_run=False`` cannot override a forced dry run (setting or admin switch).
    """
    control = CleanupControl.current()
    forced = conf.cleanup_dry_run() or control.force_dry_run
    skipped_reason = (
        "disabled" if not conf.cleanup_enabled() else "paused" if control.paused else ""
    )
    return CleanupContext(
        now=now or timezone.now(),
        dry_run=bool(dry_run) or forced,
        batch_size=batch_size or conf.cleanup_batch_size(),
        storage=storage or get_storage(),
        grace=conf.cleanup_grace(),
        session_ttl=conf.session_ttl(),
        failed_session_retention=conf.failed_session_retention(),
        outbox_retention=conf.outbox_retention(),
        retention_workers=conf.retention_workers(),
        skipped_reason=skipped_reason,
        dry_run_forced=forced,
    )


@dataclass(frozen=True)
class ItemError:
    """One item a step could not handle (a storage key), and why."""

    item: str
    error: str


@dataclass(frozen=True)
class StepResult:
    """What one step did (or, in a dry run, would do). Every count is exact."""

    expired: int = 0
    deleted: int = 0
    failed: int = 0
    foreign: int = 0  # objects under a prefix the portal cannot prove it made: kept
    bytes_reclaimed: int = 0
    notified: int = 0  # retention: files sent their file.expiring notice
    dry_run: bool = False
    errors: tuple[ItemError, ...] = ()  # the first MAX_RECORDED_ERRORS failures
    foreign_sample: tuple[str, ...] = ()  # the first FOREIGN_SAMPLE_SIZE foreign keys

    COUNTS = ("expired", "deleted", "failed", "foreign", "bytes_reclaimed", "notified")

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTS}

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepTally:
    """A step's running totals while it works; ``result()`` freezes them."""

    dry_run: bool = False
    expired: int = 0
    deleted: int = 0
    failed: int = 0
    foreign: int = 0
    bytes_reclaimed: int = 0
    notified: int = 0
    errors: list[ItemError] = field(default_factory=list)
    foreign_sample: list[str] = field(default_factory=list)

    def note_failures(self, step: str, failures: dict[str, str]) -> None:
        for key, reason in failures.items():
            log.warning("cleanup.item_failed", step=step, key=key, reason=reason)
            if len(self.errors) < MAX_RECORDED_ERRORS:
                self.errors.append(ItemError(item=key, error=reason))
        self.failed += len(failures)

    def note_foreign(self, key: str) -> None:
        self.foreign += 1
        if len(self.foreign_sample) < FOREIGN_SAMPLE_SIZE:
            self.foreign_sample.append(key)

    def add(self, other: "StepTally") -> None:
        """Add ``other``'s totals and samples (another worker's, on the same step)."""
        for name in StepResult.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors[: MAX_RECORDED_ERRORS - len(self.errors)])
        sample_room = FOREIGN_SAMPLE_SIZE - len(self.foreign_sample)
        self.foreign_sample.extend(other.foreign_sample[:sample_room])

    def result(self) -> StepResult:
        frozen = {**vars(self), "errors": tuple(self.errors)}
        frozen["foreign_sample"] = tuple(self.foreign_sample)
        return StepResult(**frozen)


def cleanup_step(func):
    """Make ``func(ctx)`` a step: callable with a context, or with ``now=``, ``dry_run=``,
    ``batch_size=``, ``storage=`` from which one is built (switches included). A skipped
    context (cleanup disabled or paused) changes nothing."""

    @functools.wraps(func)
    def step(ctx: CleanupContext | None = None, /, **overrides) -> StepResult:
        if ctx is None:
            ctx = cleanup_context(**overrides)
        elif overrides:
            raise TypeError(f"{func.__name__}() takes a context or keyword arguments, not both")
        if ctx.skipped_reason:
            log.info("cleanup.step_skipped", step=func.__name__, reason=ctx.skipped_reason)
            return StepResult(dry_run=ctx.dry_run)
        return func(ctx)

    return step
