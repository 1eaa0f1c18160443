"""Operational cleanup (SPEC §6, PEP 0019): expire, delete, prune, sweep, record.

Each step is a plain function taking ``now=``, ``dry_run=`` and ``batch_size=``
(and ``storage=`` where it touches storage) and returning a small frozen result.
``run_cleanup`` runs them in order and records a ``CleanupRun``.

How the steps stay safe:

- Work is done in batches taken in index order, each batch locked with
  ``SELECT … FOR UPDATE SKIP LOCKED`` in a short transaction (PostgreSQL, where
  expiry and part claims lock and update a batch in one statement; elsewhere the
  lock is a no-op and the conditional writes below still hold).
  Overlapping runs therefore take different batches, and every count is a row
  count of a write this run made, so totals over several runs are exact.
- Expiry is a conditional UPDATE (still active, still idle), so a part that
  arrives meanwhile either keeps its session alive or finds it failed (410).
- Storage is never called inside a transaction. Parts are claimed in a short
  transaction (``cleanup_claimed_until``), their objects deleted outside it, and
  only then are the rows of the objects really gone deleted. A crash leaves
  claimed rows whose objects may or may not exist: the claim expires and a later
  run deletes them again ("already gone" counts as deleted).
- Memory stays bounded: at most two batches of ids or keys are held at a time
  (part deletion overlaps one batch's storage deletes with the next one's claim).
"""

import contextvars
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import islice

import structlog
from django.apps import apps
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from portal import conf
from portal.exceptions import PortalError
from portal.models import (
    CleanupControl,
    CleanupRun,
    OutboxDelivery,
    OutboxEvent,
    UploadFile,
    UploadPart,
    UploadSession,
)
from portal.storage import get_storage

log = structlog.get_logger(__name__)

CLEANUP_TASK_NAME = "portal.tasks.portal_cleanup_task"
# A run records at most this many item errors; the counts stay exact.
MAX_RECORDED_ERRORS = 50
# How long a claim on a part protects it from other runs: far longer than one
# batch of storage deletes takes, short enough that a crashed run's batch is
# taken up again soon.
PART_CLAIM_TTL = timedelta(minutes=5)
# A run still "running" after this long belongs to a process that died.
ABANDONED_RUN_AFTER = timedelta(hours=6)
# /health/cleanup fails when no run succeeded within this many intervals.
HEALTHY_WITHIN_INTERVALS = 3


# -- results ----------------------------------------------------------------------


@dataclass(frozen=True)
class ItemError:
    """One item a step could not handle (a storage key), and why."""

    item: str
    error: str


@dataclass(frozen=True)
class StaleSessionsResult:
    expired: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StorageDeletionResult:
    """Outcome of a step that deletes temp objects (orphan parts, the storage sweep)."""

    deleted: int = 0
    failed: int = 0
    errors: tuple[ItemError, ...] = ()  # the first MAX_RECORDED_ERRORS failures
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PruneResult:
    """Outcome of a step that deletes old rows (failed sessions, delivered events)."""

    pruned: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


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
        return {
            "run_id": self.run_id,
            "trigger": self.trigger,
            "status": self.status,
            "ok": self.ok,
            "dry_run": self.dry_run,
            "skipped_reason": self.skipped_reason,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_ms": self.duration_ms,
            "counts": self.counts,
            "errors": list(self.errors),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def summary(self) -> str:
        mode = " (dry run)" if self.dry_run else ""
        if self.status == CleanupRun.Status.SKIPPED:
            return f"Cleanup skipped: {self.skipped_reason}. Run {self.run_id}."
        lines = [f"Cleanup {self.status}{mode} in {self.duration_ms} ms. Run {self.run_id}."]
        for step, counts in self.counts.items():
            if step != "total":
                numbers = ", ".join(f"{name} {n}" for name, n in counts.items()) or "not run"
                lines.append(f"  {step}: {numbers}")
        lines.extend(f"  error: {_describe(error)}" for error in self.errors)
        return "\n".join(lines)


def _describe(error: dict) -> str:
    item = f" {error['item']}" if error.get("item") else ""
    return f"{error['step']}{item}: {error['error']}"


# -- the steps --------------------------------------------------------------------


def cleanup_stale_sessions(*, now=None, dry_run=None, batch_size=None) -> StaleSessionsResult:
    """Fail ``init``/``in_progress`` sessions idle for longer than the TTL (reason "expired").

    Their files fail with them. Their parts stay until the grace period has passed.
    """
    now = now or timezone.now()
    dry_run = conf.cleanup_dry_run() if dry_run is None else dry_run
    stale = UploadSession.objects.active().idle_since(now - conf.session_ttl())
    if dry_run:
        return StaleSessionsResult(expired=stale.count(), dry_run=True)
    expired = 0
    while True:
        with transaction.atomic():
            # Expired rows leave the active set, so each batch is simply the oldest idle
            # sessions left: a range scan of the partial index of active sessions, which
            # costs the same for the last batch as for the first.
            rows = _update_next_batch(
                stale,
                order_by="last_activity_at",
                size=batch_size,
                values={
                    "status": UploadSession.Status.FAILED,
                    "failure_reason": "expired",
                    "finished_at": now,
                    "updated_at": now,
                },
                related=("file", {"status": UploadFile.Status.FAILED, "updated_at": now}),
            )
        if not rows:
            break
        expired += len(rows)
        log.info("session.expired", count=len(rows), session_ids=[str(pk) for (pk,) in rows])
    return StaleSessionsResult(expired=expired)


def cleanup_orphan_temp_parts(
    *, now=None, dry_run=None, batch_size=None, storage=None
) -> StorageDeletionResult:
    """Delete the temp objects, then the rows, of parts of sessions terminal for the grace period.

    A key storage fails to delete is logged and counted; its row stays for the next run.
    """
    now = now or timezone.now()
    dry_run = conf.cleanup_dry_run() if dry_run is None else dry_run
    storage = storage or get_storage()
    finished_before = now - conf.cleanup_grace()
    if dry_run:
        return StorageDeletionResult(
            deleted=_claimable_parts(finished_before, now).count(), dry_run=True
        )
    started = time.monotonic()
    deleted = failed = 0
    errors = []

    def claim_next_batch(after=None):
        # The run's clock moves on, so claims stay meaningful during long runs.
        current = now + timedelta(seconds=time.monotonic() - started)
        claimable = _claimable_parts(finished_before, current)
        with _committed_asynchronously():
            return _update_next_batch(
                claimable.filter(pk__gt=after) if after else claimable,
                size=batch_size,
                values={"cleanup_claimed_until": current + PART_CLAIM_TTL},
                returning=("temp_storage_key",),
            )

    # Storage and database work overlap: a worker thread deletes one batch's objects
    # while this thread removes the rows of the batch before and claims the next.
    with ThreadPoolExecutor(max_workers=1) as storage_worker:
        rows, in_flight = claim_next_batch(), None
        while rows or in_flight:
            deleting = None
            if rows:
                keys_to_delete = [key for _, key in rows]
                deleting = (
                    rows,
                    storage_worker.submit(
                        contextvars.copy_context().run, storage.delete_many, keys_to_delete
                    ),
                )
            if in_flight:
                claimed, result = in_flight[0], in_flight[1].result()
                removed = _remove_deleted_parts(claimed, result)
                deleted += removed
                if removed:
                    log.info("cleanup.item_deleted", step="orphan_temp_parts", count=removed)
                failed += len(result.errors)
                _note_failures("orphan_temp_parts", result.errors, errors)
            in_flight = deleting
            rows = claim_next_batch(after=max(pk for pk, _ in rows)) if rows else []
    return StorageDeletionResult(deleted=deleted, failed=failed, errors=tuple(errors))


def _remove_deleted_parts(rows, result) -> int:
    """Delete the rows of the parts whose objects are gone; release the claim on the rest,
    so the next run retries them at once."""
    gone = set(result.deleted)
    with _committed_asynchronously():
        deleted = UploadPart.objects.filter(pk__any=[pk for pk, key in rows if key in gone])
        removed, _ = deleted.delete()
        if result.errors:
            refused = [pk for pk, key in rows if key in result.errors]
            UploadPart.objects.filter(pk__any=refused).update(cleanup_claimed_until=None)
    return removed


def prune_old_failed_sessions(*, now=None, dry_run=None, batch_size=None) -> PruneResult:
    """Delete failed/aborted sessions (and their files) finished before the retention period.

    A session is deleted only once it has no part rows left, so no temp object is
    ever orphaned by a prune. ``PORTAL_FAILED_SESSION_RETENTION_DAYS=0`` turns this off.
    """
    now = now or timezone.now()
    dry_run = conf.cleanup_dry_run() if dry_run is None else dry_run
    retention = conf.failed_session_retention()
    if retention is None:
        return PruneResult(dry_run=dry_run)
    old = UploadSession.objects.filter(
        status__in=(UploadSession.Status.FAILED, UploadSession.Status.ABORTED)
    ).finished_before(now - retention)
    has_parts = Exists(UploadPart.objects.filter(session=OuterRef("pk")))
    prunable = old.filter(~has_parts)
    if dry_run:
        # A live run deletes the parts of sessions past the grace period first.
        would_lose_parts = Q(finished_at__lt=now - conf.cleanup_grace())
        return PruneResult(pruned=old.filter(~has_parts | would_lose_parts).count(), dry_run=True)
    pruned = 0
    last_pk = None
    while True:
        with transaction.atomic():
            rows = _lock_batch(prunable, after=last_pk, fields=("file_id",), size=batch_size)
            if not rows:
                break
            ids = [pk for pk, _ in rows]
            _, per_model = prunable.filter(pk__any=ids).delete()
            count = per_model.get(UploadSession._meta.label, 0)
            UploadFile.objects.filter(
                pk__any=[file_id for _, file_id in rows], session__isnull=True
            ).delete()
        last_pk = ids[-1]
        pruned += count
        log.info("cleanup.item_deleted", step="failed_sessions", count=count)
    return PruneResult(pruned=pruned)


def sweep_orphan_storage_objects(
    *, now=None, dry_run=None, batch_size=None, storage=None
) -> StorageDeletionResult:
    """Delete temp objects older than the grace period that no part row references.

    Storage-first: it finds what a crash left behind between writing an object and
    recording its part. The adapter lists and deletes only under the temp prefix.
    """
    now = now or timezone.now()
    dry_run = conf.cleanup_dry_run() if dry_run is None else dry_run
    storage = storage or get_storage()
    size = batch_size or conf.cleanup_batch_size()
    deleted = failed = 0
    errors = []
    objects = storage.iter_temp_objects(older_than=now - conf.cleanup_grace())
    while batch := [obj.key for obj in islice(objects, size)]:
        referenced = set(
            UploadPart.objects.filter(temp_storage_key__in=batch).values_list(
                "temp_storage_key", flat=True
            )
        )
        orphans = [key for key in batch if key not in referenced]
        if dry_run:
            deleted += len(orphans)
            continue
        if not orphans:
            continue
        result = storage.delete_many(orphans)
        deleted += len(result.deleted)
        if result.deleted:
            log.info(
                "cleanup.item_deleted",
                step="orphan_storage_objects",
                count=len(result.deleted),
                keys=list(result.deleted),
            )
        failed += len(result.errors)
        _note_failures("orphan_storage_objects", result.errors, errors)
    return StorageDeletionResult(
        deleted=deleted, failed=failed, errors=tuple(errors), dry_run=dry_run
    )


def prune_outbox(*, now=None, dry_run=None, batch_size=None) -> PruneResult:
    """Delete events older than the outbox retention whose every delivery was delivered
    before it (events that had no destination at all go too)."""
    now = now or timezone.now()
    dry_run = conf.cleanup_dry_run() if dry_run is None else dry_run
    cutoff = now - conf.outbox_retention()
    unfinished = OutboxDelivery.objects.filter(event=OuterRef("pk")).exclude(
        status=OutboxDelivery.Status.DELIVERED, delivered_at__lt=cutoff
    )
    prunable = OutboxEvent.objects.filter(created_at__lt=cutoff).filter(~Exists(unfinished))
    if dry_run:
        return PruneResult(pruned=prunable.count(), dry_run=True)
    pruned = 0
    last_pk = None
    while True:
        with transaction.atomic():
            rows = _lock_batch(prunable, after=last_pk, fields=(), size=batch_size)
            if not rows:
                break
            ids = [pk for (pk,) in rows]
            _, per_model = prunable.filter(pk__any=ids).delete()
            count = per_model.get(OutboxEvent._meta.label, 0)
        last_pk = ids[-1]
        pruned += count
        log.info("cleanup.item_deleted", step="outbox", count=count)
    return PruneResult(pruned=pruned)


@contextmanager
def _committed_asynchronously():
    """A transaction whose commit does not wait for its WAL to reach disk (PostgreSQL).

    Only for part claims and part row deletions: a server crash can lose the last
    fraction of a second of them, and the next run redoes that work (a lost claim
    was never needed; a row that comes back points at an object already gone, which
    counts as deleted). Waiting on the flush of every batch was a tenth of the step.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def _claimable_parts(finished_before, now):
    """Parts of sessions terminal since before ``finished_before``, not claimed by a live run."""
    return UploadPart.objects.filter(
        session__status__in=UploadSession.TERMINAL_STATUSES,
        session__finished_at__lt=finished_before,
    ).filter(Q(cleanup_claimed_until__isnull=True) | Q(cleanup_claimed_until__lt=now))


def _lock_batch(queryset, *, fields, size, after=None, order_by="pk") -> list[tuple]:
    """The next rows (pk first, then ``fields``) after pk ``after``, locked for this transaction.

    Rows another run holds are skipped, not waited for: that run is handling them.
    Walking an index (the primary key unless ``order_by`` names another) keeps every
    batch query a range scan.
    """
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    return list(
        queryset.order_by(order_by)
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("pk", *fields)[: size or conf.cleanup_batch_size()]
    )


def _update_next_batch(
    queryset, *, size, values, order_by="pk", returning=(), related=None
) -> list[tuple]:
    """Lock the next ``size`` rows of ``queryset`` in ``order_by`` order and set ``values``
    on them; return each one's pk and ``returning`` fields. Call inside a transaction.

    ``related`` is ``(foreign key name, values)``: those values are set as well on the
    rows the batch points to. Rows another run holds are skipped, not waited for: that
    run is handling them.

    On PostgreSQL this is one statement, ``UPDATE … WHERE pk = ANY(ARRAY(SELECT … FOR
    UPDATE SKIP LOCKED)) RETURNING …``, with the related update in the same statement:
    one round trip, and primary-key lookups where a join or ``IN (SELECT …)`` lets the
    planner hash the whole table on every batch. The statement takes the locks itself,
    so a row changed after it was read is re-checked against ``queryset`` and left
    alone if it no longer matches.
    """
    model = queryset.model
    size = size or conf.cleanup_batch_size()
    foreign_key = model._meta.get_field(related[0]) if related else None
    if connection.vendor == "postgresql":
        locked = queryset.order_by(order_by).select_for_update(skip_locked=True, of=("self",))
        select_sql, select_params = locked.values("pk")[:size].query.sql_with_params()
        pk = _qn(model._meta.pk.column)
        returned = ", ".join([pk, *(_qn(model._meta.get_field(f).column) for f in returning)])
        update_sql, params = _update_sql(model, values, f"{pk} = ANY(ARRAY({select_sql}))")
        params += select_params
        sql = f"{update_sql} RETURNING {returned}"
        if foreign_key:
            target = _qn(foreign_key.column)
            related_sql, related_params = _update_sql(
                foreign_key.related_model,
                related[1],
                f"{_qn(foreign_key.target_field.column)} = ANY(ARRAY(SELECT {target} FROM batch))",
            )
            sql = (
                f"WITH batch AS ({update_sql} RETURNING {returned}, {target}),"
                f" related AS ({related_sql}) SELECT {returned} FROM batch"
            )
            params += related_params
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    rows = _lock_batch(queryset, fields=returning, size=size, order_by=order_by)
    ids = [row[0] for row in rows]
    if queryset.filter(pk__any=ids).update(**values) < len(rows):
        # Conditional: where rows cannot be locked (SQLite), a row can change between
        # being read and being updated; only the rows still matching were updated.
        ids = set(model.objects.filter(pk__any=ids, **values).values_list("pk", flat=True))
        rows = [row for row in rows if row[0] in ids]
    if foreign_key:
        targets = model.objects.filter(pk__any=ids).values(foreign_key.attname)
        foreign_key.related_model.objects.filter(pk__in=targets).update(**related[1])
    return rows


def _update_sql(model, values: dict, where: str) -> tuple[str, list]:
    """``UPDATE <model's table> SET <values> WHERE <where>`` and its parameters."""
    fields = [model._meta.get_field(name) for name in values]
    assignments = ", ".join(f"{_qn(field.column)} = %s" for field in fields)
    params = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, values.values(), strict=True)
    ]
    return f"UPDATE {_qn(model._meta.db_table)} SET {assignments} WHERE {where}", params


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


def _note_failures(step: str, failures: dict[str, str], errors: list[ItemError]) -> None:
    for key, reason in failures.items():
        log.warning("cleanup.item_failed", step=step, key=key, reason=reason)
        if len(errors) < MAX_RECORDED_ERRORS:
            errors.append(ItemError(item=key, error=reason))


# -- a whole run ------------------------------------------------------------------


def run_cleanup(
    *, trigger, now=None, dry_run=None, batch_size=None, storage=None, cycle="all", only=None
) -> CleanupReport:
    """Run every step in order and record the run as a ``CleanupRun``.

    ``cycle`` picks the steps: ``"light"`` all but the deep ones (``DEEP_STEPS``), ``"deep"``
    only those, ``"all"`` every step; ``only`` (step names) narrows them further.

    ``PORTAL_CLEANUP_ENABLED=false`` or the paused switch records a skipped run and
    changes nothing. ``PORTAL_CLEANUP_DRY_RUN``, the force-dry-run switch or
    ``dry_run=True`` make it a dry run (no argument can override the switches). A
    step that fails is recorded and the run goes on with the next one.
    """
    now = now or timezone.now()
    started = time.monotonic()
    control = CleanupControl.current()
    skipped_reason = (
        "disabled" if not conf.cleanup_enabled() else "paused" if control.paused else ""
    )
    dry_run = bool(dry_run) or conf.cleanup_dry_run() or control.force_dry_run
    _close_abandoned_runs(now)
    run = CleanupRun.objects.create(
        trigger=trigger,
        dry_run=dry_run,
        started_at=now,
        status=CleanupRun.Status.SKIPPED if skipped_reason else CleanupRun.Status.RUNNING,
    )
    with structlog.contextvars.bound_contextvars(run_id=str(run.pk)):
        if skipped_reason:
            log.info("cleanup.skipped", trigger=trigger, reason=skipped_reason)
            return _finish(run, now, started, {}, [], skipped_reason=skipped_reason)
        log.info("cleanup.started", trigger=trigger, dry_run=dry_run, cycle=cycle)
        from portal.services import reconcile, retention  # they import this module's claims

        options = {"now": now, "dry_run": dry_run, "batch_size": batch_size}
        steps = {
            "stale_sessions": partial(cleanup_stale_sessions, **options),
            "orphan_temp_parts": partial(cleanup_orphan_temp_parts, storage=storage, **options),
            "failed_sessions": partial(prune_old_failed_sessions, **options),
            # Retention (SPEC §10); its steps reuse this module's batch claims.
            "expiring_files": partial(retention.notify_expiring_files, **options),
            "expired_files": partial(
                retention.delete_expired_files, storage=storage, run_id=run.pk, **options
            ),
            "orphan_storage_objects": partial(
                sweep_orphan_storage_objects, storage=storage, **options
            ),
            # Final objects against file rows (SPEC §11).
            "reconcile_storage": partial(reconcile.reconcile_storage, storage=storage, **options),
            "outbox": partial(prune_outbox, **options),
        }
        steps = {
            name: step
            for name, step in steps.items()
            if _in_cycle(name, cycle) and (only is None or name in only)
        }
        results, errors = {}, []
        try:
            for name, step in steps.items():
                try:
                    results[name] = step()
                except (PortalError, DatabaseError) as exc:
                    log.exception("cleanup.step_failed", step=name)
                    errors.append({"step": name, "error": f"{exc.__class__.__name__}: {exc}"})
                    continue
                errors.extend(
                    {"step": name, "item": error.item, "error": error.error}
                    for error in getattr(results[name], "errors", ())
                )
        except BaseException:
            # An unexpected error still closes the audit record before it propagates.
            _finish(run, now, started, results, errors, status=CleanupRun.Status.FAILED)
            raise
        status = _status(results, steps=len(steps))
        return _finish(run, now, started, results, errors, status=status)


# Steps of the deep cycle (PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES); the rest are light.
DEEP_STEPS = frozenset({"orphan_storage_objects", "reconcile_storage"})


def _in_cycle(step: str, cycle: str) -> bool:
    if cycle == "all":
        return True
    if cycle not in ("light", "deep"):
        raise ValueError(f"cycle must be 'all', 'light' or 'deep', not {cycle!r}")
    return (step in DEEP_STEPS) == (cycle == "deep")


def _status(results: dict, *, steps: int) -> str:
    if not results:
        return CleanupRun.Status.FAILED
    if len(results) < steps or any(getattr(r, "failed", 0) for r in results.values()):
        return CleanupRun.Status.PARTIAL
    return CleanupRun.Status.SUCCESS


def _totals(results: dict) -> dict:
    def total(attribute):
        return sum(getattr(result, attribute, 0) for result in results.values())

    return {
        "expired": total("expired"),
        "deleted": total("deleted") + total("pruned"),
        "failed": total("failed"),
    }


def _finish(run, now, started, results, errors, *, status=None, skipped_reason=""):
    duration_ms = round((time.monotonic() - started) * 1000)
    counts = {
        name: {k: v for k, v in result.as_dict().items() if k not in ("dry_run", "errors")}
        for name, result in results.items()
    }
    if results:
        counts["total"] = _totals(results)
    run.status = status or run.status
    run.finished_at = now + timedelta(milliseconds=duration_ms)
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


# -- what operators see -----------------------------------------------------------


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
    interval_minutes: float

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
            "interval_minutes": self.interval_minutes,
        }


def cleanup_health(*, now=None) -> CleanupHealth:
    """Healthy when a run succeeded within the last three cleanup intervals."""
    now = now or timezone.now()
    interval = conf.cleanup_interval()
    last = CleanupRun.objects.order_by("-started_at").first()
    last_success_at = (
        CleanupRun.objects.filter(status=CleanupRun.Status.SUCCESS)
        .order_by("-started_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    totals = {"deleted": 0, "failed": 0, "expired": 0}
    recent = CleanupRun.objects.filter(started_at__gte=now - timedelta(hours=24), dry_run=False)
    for counts in recent.values_list("counts", flat=True).iterator():
        for name in totals:
            totals[name] += (counts or {}).get("total", {}).get(name, 0)
    return CleanupHealth(
        healthy=bool(
            last_success_at and last_success_at >= now - HEALTHY_WITHIN_INTERVALS * interval
        ),
        last_run=_run_summary(last) if last else None,
        last_success_at=last_success_at,
        next_run_at=_next_scheduled_run(),
        deleted_24h=totals["deleted"],
        failed_24h=totals["failed"],
        expired_24h=totals["expired"],
        paused=CleanupControl.current().paused,
        interval_minutes=interval.total_seconds() / 60,
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


def _next_scheduled_run() -> datetime | None:
    """When beat next sends the cleanup task, from django-celery-beat's table (interval only)."""
    if not apps.is_installed("django_celery_beat"):
        return None
    from django_celery_beat.models import PeriodicTask

    task = (
        PeriodicTask.objects.filter(task=CLEANUP_TASK_NAME, enabled=True, interval__isnull=False)
        .select_related("interval")
        .order_by("-last_run_at")
        .first()
    )
    if task is None:
        return None
    since = task.last_run_at or task.start_time or task.date_changed
    return since + task.interval.schedule.run_every


def effective_settings() -> dict:
    """The cleanup settings and switches in force now, for the admin (no secrets)."""
    control = CleanupControl.current()
    retention = conf.failed_session_retention()
    return {
        "PORTAL_CLEANUP_ENABLED": conf.cleanup_enabled(),
        "PORTAL_CLEANUP_DRY_RUN": conf.cleanup_dry_run(),
        "paused (admin switch)": control.paused,
        "force dry run (admin switch)": control.force_dry_run,
        "PORTAL_CLEANUP_INTERVAL_MINUTES": conf.cleanup_interval().total_seconds() / 60,
        "PORTAL_SESSION_TTL_HOURS": conf.session_ttl().total_seconds() / 3600,
        "PORTAL_CLEANUP_GRACE_MINUTES": conf.cleanup_grace().total_seconds() / 60,
        "PORTAL_CLEANUP_BATCH_SIZE": conf.cleanup_batch_size(),
        "PORTAL_FAILED_SESSION_RETENTION_DAYS": retention.days if retention else 0,
        "PORTAL_OUTBOX_RETENTION_DAYS": conf.outbox_retention().days,
        "PORTAL_STORAGE_BACKEND": conf.storage_backend(),
        "PORTAL_TEMP_PREFIX": conf.temp_prefix(),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
