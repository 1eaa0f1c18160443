"""Retention of stored files (SPEC §10): notices before deletion, deletion with proof, erasure.

Two cleanup steps, under the rules of SPEC §6:

- ``notify_expiring_files`` claims batches of stored, unheld, unnotified files whose
  notice time (``expires_at - notice``) has passed, and in the same transaction sets
  ``expiring_notified_at`` and writes one ``file.expiring`` event each. The claim is a
  conditional locked update (``SELECT … FOR UPDATE SKIP LOCKED``), so overlapping runs
  notify each file exactly once and every count is a row this run changed.
- ``delete_expired_files`` claims batches of stored, unheld files past ``expires_at``
  whose notice went out at least ``notice`` ago (``retention_claimed_until``, in a short
  transaction), deletes their objects outside any transaction, and only then records
  each deletion in one transaction: status ``deleted``, ``deleted_at``, a
  ``FileDeletion`` row and a ``file.deleted`` event. An object storage refuses keeps
  its file ``stored``; the claim is released and the next run tries again.

On PostgreSQL each step works on ``PORTAL_RETENTION_WORKERS`` connections at once
(``portal.db.on_connections``): the claims that make overlapping runs safe make the
workers of one run safe too, and the statements of a batch are CPU work for the
database that one connection leaves on a single core (PEP 0025, "Write path and workers").

``erase_file`` deletes one file now, on request, through the same recording path.
"""

import contextvars
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Max, Min, Sum, Value
from django.utils import timezone

from portal.db import claim_batch, committed_asynchronously, on_connections
from portal.exceptions import RetentionRefused, StorageError
from portal.logs import get_logger
from portal.models import FileDeletion, RetentionPolicy, UploadFile
from portal.services.cleanup_context import CleanupContext, StepResult, StepTally, cleanup_step
from portal.services.outbox import emit_events, events_emitted
from portal.services.retention_batches import (
    AGGREGATE_TYPE,
    FILE_FIELDS,
    notify_batch,
    record_batch,
)
from portal.services.sessions import FileInfo
from portal.storage import get_storage

log = get_logger(__name__)

# How long a deletion claim protects a file from other runs (and from a new hold).
DELETION_CLAIM_TTL = timedelta(minutes=5)


@dataclass(frozen=True)
class _Target:
    """A file claimed for deletion: what deleting its object and counting it need."""

    pk: object
    storage_key: str
    size_bytes: int


@dataclass(frozen=True)
class _Claimed:
    """One claimed file, as the claim read it (for the payloads and proofs built in Python)."""

    pk: object
    original_filename: str
    content_type: str
    size_bytes: int
    sha256: str
    storage_backend: str
    storage_bucket: str
    storage_key: str
    retention_policy: object
    stored_at: datetime | None
    expires_at: datetime | None
    expiring_notified_at: datetime | None

    def file_info(self, policies: dict) -> dict:
        policy = policies.get(self.retention_policy)
        return FileInfo.of(self, retention_class=policy.code if policy else "").as_dict()


def _policies() -> dict:
    return {policy.pk: policy for policy in RetentionPolicy.objects.all()}


def _at(now, sign: int, field: str):
    """``now ± <field>`` as a database expression (a policy duration, through the join)."""
    expression = Value(now) + F(field) if sign > 0 else Value(now) - F(field)
    return ExpressionWrapper(expression, output_field=DateTimeField())


def notice_due(now):
    """Stored, unheld, unnotified files whose notice time has passed."""
    longest = RetentionPolicy.objects.aggregate(longest=Max("notice"))["longest"] or timedelta()
    return (
        UploadFile.objects.stored()
        .not_held()
        .filter(expiring_notified_at__isnull=True, expires_at__isnull=False)
        # Sargable bound first, so the partial index is read as one short range.
        .filter(expires_at__lte=now + longest)
        .filter(expires_at__lte=_at(now, +1, "retention_policy__notice"))
    )


def deletion_due(now, *, claims_at=None):
    """Stored, unheld files past expiry, notified at least their notice ago, not claimed
    (at ``claims_at``, default ``now``)."""
    shortest = RetentionPolicy.objects.aggregate(shortest=Min("notice"))["shortest"] or timedelta()
    return (
        UploadFile.objects.stored()
        .not_held()
        .unclaimed(claims_at or now)
        .filter(expires_at__lte=now, expiring_notified_at__lte=now - shortest)
        .filter(expiring_notified_at__lte=_at(now, -1, "retention_policy__notice"))
    )


@cleanup_step
def notify_expiring_files(ctx: CleanupContext) -> StepResult:
    """Send one ``file.expiring`` per file whose notice time has passed (SPEC §10).

    ``ctx.retention_workers`` connections claim batches at once until none is left: a
    claim skips the rows another holds, as it does another run's.
    """
    now = ctx.now
    due = notice_due(now)
    if ctx.dry_run:
        return StepResult(notified=due.count(), dry_run=True)
    values = {"expiring_notified_at": now, "updated_at": now}

    def notify_until_done() -> int:
        notified = 0
        while True:
            with transaction.atomic():
                # Notified rows leave the partial index: each batch is the head of what is left.
                if connection.vendor == "postgresql":
                    file_ids, event_ids = notify_batch(
                        due, size=ctx.batch_size, values=values, now=now
                    )
                    events_emitted("file.expiring", event_ids, now=now)
                else:
                    file_ids = _notify_batch(due, size=ctx.batch_size, values=values, now=now)
            if not file_ids:
                return notified
            notified += len(file_ids)
            log.info("file.expiring", count=len(file_ids), file_ids=file_ids)

    return StepResult(notified=sum(on_connections(notify_until_done, ctx.retention_workers)))


def _notify_batch(due, *, size, values, now) -> list[str]:
    """``notify_batch`` for databases other than PostgreSQL, the events built in Python."""
    policies = _policies()
    rows = claim_batch(due, order_by="expires_at", size=size, values=values, returning=FILE_FIELDS)
    claimed = [_Claimed(*row) for row in rows]
    emit_events(
        event_type="file.expiring",
        aggregate_type=AGGREGATE_TYPE,
        events=(_expiring_event(file, policies, now) for file in claimed),
        now=now,
    )
    return [str(file.pk) for file in claimed]


def _expiring_event(file: _Claimed, policies: dict, now) -> tuple:
    policy = policies.get(file.retention_policy)
    delete_after = max(file.expires_at, now + (policy.notice if policy else timedelta()))
    return (
        file.pk,
        f"file.expiring:{file.pk}:{now.isoformat()}",
        {
            "file": file.file_info(policies),
            "expires_at": file.expires_at.isoformat(),
            "delete_after": delete_after.isoformat(),
        },
    )


@cleanup_step
def delete_expired_files(ctx: CleanupContext) -> StepResult:
    """Delete the objects of files due for deletion, then record each deletion (SPEC §10).

    ``ctx.retention_workers`` connections work at once, each a pipeline: one batch's
    objects are deleted in a storage thread while the batch before is recorded and the
    next one claimed, so each holds at most two batches at a time.
    """
    now, storage = ctx.now, ctx.storage
    if ctx.dry_run:
        due = deletion_due(now)
        return StepResult(
            deleted=due.count(),
            bytes_reclaimed=due.aggregate(total=Sum("size_bytes"))["total"] or 0,
            dry_run=True,
        )
    started = time.monotonic()
    # Claims go one at a time, in id order over the partial index of notified files,
    # from the run's last claimed id on: a refused file, released for the next run, is
    # behind that point for every worker, so this run does not take it again.
    claim_lock, cursor = threading.Lock(), {"after": None}

    def claim_next_batch():
        with claim_lock:
            # The run's clock moves on, so claims stay meaningful during long runs.
            current = now + timedelta(seconds=time.monotonic() - started)
            due = deletion_due(now, claims_at=current)
            if cursor["after"] is not None:
                due = due.filter(pk__gt=cursor["after"])
            # A claim lost to a server crash is only redone (PEP 0025, "Deletion claims").
            with committed_asynchronously():
                rows = claim_batch(
                    due,
                    size=ctx.batch_size,
                    values={"retention_claimed_until": current + DELETION_CLAIM_TTL},
                    returning=("storage_key", "size_bytes"),
                )
            if rows:
                cursor["after"] = max(row[0] for row in rows)
        return [_Target(*row) for row in rows]

    def delete_until_done() -> StepTally:
        tally = StepTally()
        with ThreadPoolExecutor(max_workers=1) as storage_worker:
            batch, in_flight = claim_next_batch(), None
            while batch or in_flight:
                deleting = None
                if batch:
                    work = contextvars.copy_context().run
                    deleting = (batch, storage_worker.submit(work, _delete_objects, storage, batch))
                if in_flight:
                    _record_deleted(*in_flight, tally=tally, run_id=ctx.run_id, now=now)
                in_flight = deleting
                batch = claim_next_batch() if batch else []
        return tally

    tally = StepTally()
    for worker_tally in on_connections(delete_until_done, ctx.retention_workers):
        tally.add(worker_tally)
    return tally.result()


def _record_deleted(claimed: list[_Target], deleting, *, tally: StepTally, run_id, now) -> None:
    """Once ``deleting`` (the storage thread's work on ``claimed``) is done: record the
    files whose object is gone, release the refused ones for the next run, count both."""
    gone, refused = deleting.result()
    recorded = record_deletions(
        [file for file in claimed if file.pk in gone],
        now=now,
        reason=FileDeletion.Reason.RETENTION_EXPIRED,
        run_id=run_id,
    )
    tally.deleted += len(recorded)
    tally.bytes_reclaimed += sum(file.size_bytes for file in recorded)
    _release(list(refused))
    tally.note_failures("expired_files", {str(pk): reason for pk, reason in refused.items()})


def _delete_objects(storage, files: list[_Target]) -> tuple[set, dict]:
    """Delete the files' final objects (missing counts as deleted), in the adapter's
    batches. Returns the ids whose object is gone and ``{id: reason}`` of those refused."""
    result = storage.delete_final_many([file.storage_key for file in files])
    refused = {f.pk: result.errors[f.storage_key] for f in files if f.storage_key in result.errors}
    return {file.pk for file in files} - refused.keys(), refused


def _release(ids) -> None:
    if ids:
        UploadFile.objects.filter(pk__any=ids).update(retention_claimed_until=None)


def record_deletions(
    files: list[_Target], *, now, reason, run_id=None, actor=None, note=""
) -> list[_Target]:
    """In one transaction: mark the files (objects already gone) ``deleted``, write one
    ``FileDeletion`` and one ``file.deleted`` each. Returns the files this call recorded;
    a file another call recorded first is left out, so each has exactly one proof."""
    if not files:
        return []
    by_pk = {file.pk: file for file in files}
    values = {
        "status": UploadFile.Status.DELETED,
        "deleted_at": now,
        "retention_claimed_until": None,
        "updated_at": now,
    }
    username = actor.get_username() if actor else ""
    options = {"now": now, "reason": reason, "run_id": run_id, "username": username, "note": note}
    with transaction.atomic():
        if connection.vendor == "postgresql":
            flipped, event_ids = record_batch(list(by_pk), values=values, **options)
            events_emitted("file.deleted", event_ids, now=now)
        else:
            flipped = _record_batch(list(by_pk), values=values, **options)
    recorded = [by_pk[pk] for pk in flipped]
    if recorded:
        log.info(
            "file.deleted",
            reason=reason,
            count=len(recorded),
            file_ids=[str(file.pk) for file in recorded],
        )
    return recorded


def _record_batch(ids, *, values, now, reason, run_id, username, note) -> list:
    """``record_batch`` for databases other than PostgreSQL, the rows written from Python."""
    policies = _policies()
    rows = claim_batch(
        UploadFile.objects.stored().filter(pk__any=ids),
        size=len(ids),
        values=values,
        returning=FILE_FIELDS,
    )
    recorded = [_Claimed(*row) for row in rows]
    FileDeletion.objects.bulk_create(
        _proof(file, policies, now=now, reason=reason, run_id=run_id, username=username, note=note)
        for file in recorded
    )
    emit_events(
        event_type="file.deleted",
        aggregate_type=AGGREGATE_TYPE,
        events=(
            (
                file.pk,
                f"file.deleted:{file.pk}",
                {
                    "file": file.file_info(policies),
                    "reason": reason,
                    "deleted_at": now.isoformat(),
                },
            )
            for file in recorded
        ),
        now=now,
    )
    return [file.pk for file in recorded]


def _proof(file: _Claimed, policies, *, now, reason, run_id, username, note) -> FileDeletion:
    policy = policies.get(file.retention_policy)
    return FileDeletion(
        file_id=file.pk,
        original_filename=file.original_filename,
        storage_backend=file.storage_backend,
        storage_bucket=file.storage_bucket,
        storage_key=file.storage_key,
        size_bytes=file.size_bytes,
        sha256=file.sha256,
        retention_class=policy.code if policy else "",
        retention_period=policy.retention if policy else None,
        stored_at=file.stored_at,
        expires_at=file.expires_at,
        notified_at=file.expiring_notified_at,
        deleted_at=now,
        reason=reason,
        note=note,
        cleanup_run_id=run_id,
        deleted_by_username=username,
        created_at=now,
    )


# -- erasure on request ------------------------------------------------------------


def parse_file_ids(values) -> list[uuid.UUID]:
    """File ids as UUIDs, in the order given, without repeats; refuses any that is not one."""
    ids, bad = {}, []
    for value in values:
        try:
            ids.setdefault(uuid.UUID(str(value)), None)
        except ValueError:
            bad.append(str(value))
    if bad or not ids:
        raise RetentionRefused(
            f"Not file ids: {', '.join(bad)}." if bad else "No file ids given.",
            code="invalid_file_id",
        )
    return list(ids)


def erase_file(*, file_id, reason: str, actor=None, storage=None, now=None) -> FileDeletion:
    """Delete one stored file now (reason ``erasure_request``); refused under legal hold."""
    now = now or timezone.now()
    storage = storage or get_storage()
    if not reason or not reason.strip():
        raise RetentionRefused("An erasure needs a reason.", code="reason_required")
    (file_id,) = parse_file_ids([file_id])
    with transaction.atomic():
        upload_file = UploadFile.objects.select_for_update().filter(pk=file_id).first()
        _ensure_erasable(upload_file, file_id, now=now)
        UploadFile.objects.filter(pk=file_id).update(
            retention_claimed_until=now + DELETION_CLAIM_TTL
        )
    claimed = _Target(upload_file.pk, upload_file.storage_key, upload_file.size_bytes)
    try:
        storage.delete_final(upload_file.storage_key)
    except StorageError:
        _release([upload_file.pk])
        raise
    record_deletions(
        [claimed],
        now=now,
        reason=FileDeletion.Reason.ERASURE_REQUEST,
        actor=actor,
        note=reason.strip()[:500],
    )
    return FileDeletion.objects.get(file_id=upload_file.pk)


def _ensure_erasable(upload_file, file_id, *, now) -> None:
    if upload_file is None:
        raise RetentionRefused(f"No file {file_id}.", code="not_found")
    if upload_file.status != UploadFile.Status.STORED:
        raise RetentionRefused(
            f"File {file_id} is {upload_file.status}, not stored.", code="not_stored"
        )
    if upload_file.legal_hold:
        raise RetentionRefused(f"File {file_id} is on legal hold.", code="legal_hold")
    claimed = upload_file.retention_claimed_until
    if claimed is not None and claimed >= now:
        raise RetentionRefused(
            f"File {file_id} is being deleted by a cleanup run.", code="deletion_in_progress"
        )
