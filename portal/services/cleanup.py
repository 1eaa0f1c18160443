"""The cleanup steps (SPEC §6, PEP 0019/0020): expire, delete parts, prune, sweep, prune outbox.

Each step takes one ``CleanupContext`` (see ``cleanup_context``) and returns one
``StepResult``; the runner (``portal.services.cleanup_runner``) runs them in order
and records the run.

How the steps stay safe:

- Work is done in batches taken in index order, each batch locked with
  ``SELECT … FOR UPDATE SKIP LOCKED`` and stamped in a short transaction
  (``portal.db``). Overlapping runs therefore take different batches, and every
  count is a row count of a write this run made, so totals over several runs are exact.
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
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import islice

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum

from portal.db import claim_batch, committed_asynchronously, lock_batch
from portal.logs import get_logger
from portal.models import OutboxDelivery, OutboxEvent, UploadFile, UploadPart, UploadSession
from portal.services.cleanup_context import CleanupContext, StepResult, StepTally, cleanup_step
from portal.services.reconcile import reconcile_storage
from portal.services.retention import delete_expired_files, notify_expiring_files
from portal.storage import keys

log = get_logger(__name__)

# How long a claim on a part protects it from other runs: far longer than one
# batch of storage deletes takes, short enough that a crashed run's batch is
# taken up again soon.
PART_CLAIM_TTL = timedelta(minutes=5)


@cleanup_step
def cleanup_stale_sessions(ctx: CleanupContext) -> StepResult:
    """Fail ``init``/``in_progress`` sessions idle for longer than the TTL (reason "expired").

    Their files fail with them. Their parts stay until the grace period has passed.
    """
    now = ctx.now
    stale = UploadSession.objects.active().idle_since(now - ctx.session_ttl)
    if ctx.dry_run:
        return StepResult(expired=stale.count(), dry_run=True)
    expired = 0
    while True:
        with transaction.atomic():
            # Expired rows leave the active set, so each batch is simply the oldest idle
            # sessions left: a range scan of the partial index of active sessions, which
            # costs the same for the last batch as for the first.
            rows = claim_batch(
                stale,
                order_by="last_activity_at",
                size=ctx.batch_size,
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
    return StepResult(expired=expired)


@cleanup_step
def cleanup_orphan_temp_parts(ctx: CleanupContext) -> StepResult:
    """Delete the temp objects, then the rows, of parts of sessions terminal for the grace period.

    A part's key is in the portal's own row: that is the proof the object is the
    portal's. A key storage fails to delete is logged and counted; its row stays for
    the next run.
    """
    now, storage = ctx.now, ctx.storage
    finished_before = now - ctx.grace
    if ctx.dry_run:
        would = _claimable_parts(finished_before, now).aggregate(
            n=Count("pk"), size=Sum("size_bytes")
        )
        return StepResult(deleted=would["n"], bytes_reclaimed=would["size"] or 0, dry_run=True)
    started = time.monotonic()
    tally = StepTally()

    def claim_next_batch(after=None):
        # The run's clock moves on, so claims stay meaningful during long runs.
        current = now + timedelta(seconds=time.monotonic() - started)
        claimable = _claimable_parts(finished_before, current)
        with committed_asynchronously():
            return claim_batch(
                claimable.filter(pk__gt=after) if after else claimable,
                size=ctx.batch_size,
                values={"cleanup_claimed_until": current + PART_CLAIM_TTL, "updated_at": current},
                returning=("temp_storage_key", "size_bytes"),
            )

    # Storage and database work overlap: a worker thread deletes one batch's objects
    # while this thread removes the rows of the batch before and claims the next.
    with ThreadPoolExecutor(max_workers=1) as storage_worker:
        rows, in_flight = claim_next_batch(), None
        while rows or in_flight:
            deleting = None
            if rows:
                keys_to_delete = [key for _, key, _ in rows]
                deleting = (
                    rows,
                    storage_worker.submit(
                        contextvars.copy_context().run, storage.delete_many, keys_to_delete
                    ),
                )
            if in_flight:
                claimed, result = in_flight[0], in_flight[1].result()
                removed, size = _remove_deleted_parts(claimed, result, now=now)
                tally.deleted += removed
                tally.bytes_reclaimed += size
                if removed:
                    log.info("cleanup.item_deleted", step="orphan_temp_parts", count=removed)
                tally.note_failures("orphan_temp_parts", result.errors)
            in_flight = deleting
            rows = claim_next_batch(after=max(row[0] for row in rows)) if rows else []
    return tally.result()


def _remove_deleted_parts(rows, result, *, now) -> tuple[int, int]:
    """Delete the rows of the parts whose objects are gone (count, bytes); release the
    claim on the rest, so the next run retries them at once."""
    gone = set(result.deleted)
    removed_rows = [(pk, size) for pk, key, size in rows if key in gone]
    with committed_asynchronously():
        removed, _ = UploadPart.objects.filter(pk__any=[pk for pk, _ in removed_rows]).delete()
        if result.errors:
            refused = [pk for pk, key, _ in rows if key in result.errors]
            UploadPart.objects.filter(pk__any=refused).update(
                cleanup_claimed_until=None, updated_at=now
            )
    return removed, sum(size for _, size in removed_rows)


@cleanup_step
def prune_old_failed_sessions(ctx: CleanupContext) -> StepResult:
    """Delete failed/aborted sessions (and their files) finished before the retention period.

    A session is deleted only once it has no part rows left, so no temp object is
    ever orphaned by a prune. ``PORTAL_FAILED_SESSION_RETENTION_DAYS=0`` turns this off.
    """
    if ctx.failed_session_retention is None:
        return StepResult(dry_run=ctx.dry_run)
    old = UploadSession.objects.filter(
        status__in=(UploadSession.Status.FAILED, UploadSession.Status.ABORTED)
    ).finished_before(ctx.now - ctx.failed_session_retention)
    has_parts = Exists(UploadPart.objects.filter(session=OuterRef("pk")))
    prunable = old.filter(~has_parts)
    if ctx.dry_run:
        # A live run deletes the parts of sessions past the grace period first.
        would_lose_parts = Q(finished_at__lt=ctx.now - ctx.grace)
        return StepResult(deleted=old.filter(~has_parts | would_lose_parts).count(), dry_run=True)
    pruned = 0
    last_pk = None
    while True:
        with transaction.atomic():
            rows = lock_batch(prunable, after=last_pk, fields=("file_id",), size=ctx.batch_size)
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
    return StepResult(deleted=pruned)


@cleanup_step
def sweep_orphan_storage_objects(ctx: CleanupContext) -> StepResult:
    """Delete temp objects older than the grace period that the portal provably made and
    no part row references: what a crash left between writing a part and recording it.

    Proof of ownership is the key itself: exactly the shape ``temp_part_key`` writes.
    Any other object under the temp prefix is foreign: counted, sampled, logged once
    (``cleanup.foreign_objects``), never deleted. An object of a session that is
    still active is never deleted, whatever its age: its part row may be about to
    commit. One page of keys is held at a time.
    """
    storage = ctx.storage
    tally = StepTally(dry_run=ctx.dry_run)
    objects = storage.iter_temp_objects(older_than=ctx.now - ctx.grace)
    while page := list(islice(objects, ctx.batch_size)):
        own = {}  # key -> (session id, size)
        for obj in page:
            part = keys.parse_temp_part_key(obj.key, storage.temp_prefix)
            if part is None:
                tally.note_foreign(obj.key)
            else:
                own[obj.key] = (part.session_id, obj.size)
        if not own:
            continue
        active = {
            str(pk)
            for pk in UploadSession.objects.active()
            .filter(pk__any=list({session_id for session_id, _ in own.values()}))
            .values_list("pk", flat=True)
        }
        referenced = set(
            UploadPart.objects.filter(temp_storage_key__in=list(own)).values_list(
                "temp_storage_key", flat=True
            )
        )
        orphans = [
            key
            for key, (session_id, _) in own.items()
            if session_id not in active and key not in referenced
        ]
        if ctx.dry_run:
            tally.deleted += len(orphans)
            tally.bytes_reclaimed += sum(own[key][1] for key in orphans)
            continue
        if not orphans:
            continue
        result = storage.delete_many(orphans)
        tally.deleted += len(result.deleted)
        tally.bytes_reclaimed += sum(own[key][1] for key in result.deleted)
        if result.deleted:
            log.info(
                "cleanup.item_deleted",
                step="orphan_storage_objects",
                count=len(result.deleted),
                keys=list(result.deleted),
            )
        tally.note_failures("orphan_storage_objects", result.errors)
    if tally.foreign:
        log.warning(
            "cleanup.foreign_objects",
            step="orphan_storage_objects",
            prefix=storage.temp_prefix,
            count=tally.foreign,
            sample=tally.foreign_sample,
        )
    return tally.result()


@cleanup_step
def prune_outbox(ctx: CleanupContext) -> StepResult:
    """Delete events older than the outbox retention whose every delivery was delivered
    before it (events that had no destination at all go too).
    ``PORTAL_OUTBOX_RETENTION_DAYS=0`` turns this off."""
    if ctx.outbox_retention is None:
        return StepResult(dry_run=ctx.dry_run)
    cutoff = ctx.now - ctx.outbox_retention
    unfinished = OutboxDelivery.objects.filter(event=OuterRef("pk")).exclude(
        status=OutboxDelivery.Status.DELIVERED, delivered_at__lt=cutoff
    )
    prunable = OutboxEvent.objects.filter(created_at__lt=cutoff).filter(~Exists(unfinished))
    if ctx.dry_run:
        return StepResult(deleted=prunable.count(), dry_run=True)
    pruned = 0
    last_pk = None
    while True:
        with transaction.atomic():
            rows = lock_batch(prunable, after=last_pk, size=ctx.batch_size)
            if not rows:
                break
            ids = [pk for (pk,) in rows]
            _, per_model = prunable.filter(pk__any=ids).delete()
            count = per_model.get(OutboxEvent._meta.label, 0)
        last_pk = ids[-1]
        pruned += count
        log.info("cleanup.item_deleted", step="outbox", count=count)
    return StepResult(deleted=pruned)


def _claimable_parts(finished_before, now):
    """Parts of sessions terminal since before ``finished_before``, not claimed by a live run."""
    return UploadPart.objects.filter(
        session__status__in=UploadSession.TERMINAL_STATUSES,
        session__finished_at__lt=finished_before,
    ).filter(Q(cleanup_claimed_until__isnull=True) | Q(cleanup_claimed_until__lt=now))


# The steps in the order a run takes them, by the name a run records them under.
STEPS = {
    "stale_sessions": cleanup_stale_sessions,
    "orphan_temp_parts": cleanup_orphan_temp_parts,
    "failed_sessions": prune_old_failed_sessions,
    # Retention of stored files (SPEC §10), in their own module.
    "expiring_files": notify_expiring_files,
    "expired_files": delete_expired_files,
    "orphan_storage_objects": sweep_orphan_storage_objects,
    # Final objects against file rows (SPEC §11), in their own module.
    "reconcile_storage": reconcile_storage,
    "outbox": prune_outbox,
}
# Steps of the deep cycle (PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES); the others are light.
DEEP_STEPS = frozenset({"orphan_storage_objects", "reconcile_storage"})
# "reconcile": reconciliation alone (manage.py reconcile_storage).
CYCLES = ("all", "light", "deep", "reconcile")


def steps_for(cycle: str = "all") -> dict:
    """The steps of one cycle, in order: ``light`` (beat, every interval), ``deep`` (the
    storage sweep, every deep interval) or ``all`` (the command)."""
    if cycle not in CYCLES:
        raise ValueError(f"cycle must be one of {', '.join(CYCLES)}, not {cycle!r}")
    if cycle == "reconcile":
        return {"reconcile_storage": reconcile_storage}
    return {
        name: step
        for name, step in STEPS.items()
        if cycle == "all" or (name in DEEP_STEPS) == (cycle == "deep")
    }


def __getattr__(name):
    # SPEC §6 names run_cleanup here; it lives with the runner, which imports the steps.
    if name == "run_cleanup":
        from portal.services.cleanup_runner import run_cleanup

        return run_cleanup
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
