"""Storage reconciliation (SPEC §11, runbook FM-005): final objects against ``UploadFile`` rows.

Two passes, each in bounded memory whatever the number of objects and rows:

1. Storage first: the final prefix, page by page. A key of exactly the shape
   ``keys.final_key`` writes names its file id; a page's ids are looked up in one
   query. An own-shape object with no row at all, older than the grace period, is an
   orphan and is deleted (a dry run lists it). An object a ``stored`` file points at
   marks that row seen (``storage_seen_at``, one update per page, skipping rows
   another run holds). Anything else under the prefix is foreign: counted, sampled,
   never touched.
2. Rows next: ``stored`` files of this adapter stored before the walk began and not
   seen by it. Each candidate's object is opened once more (a listing can lag or an
   object arrive late) before it becomes ``missing`` with a ``file.missing`` event,
   in one transaction per batch, conditionally on still being ``stored`` and
   unclaimed by a retention deletion. A dry run marks nothing in the first pass,
   so its second pass opens every stored file's object.

The step runs on the deep cleanup cycle and is recorded as part of that
``CleanupRun``; ``manage.py reconcile_storage`` runs it alone as a run of its own.
"""

import contextvars
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from queue import Full, Queue
from threading import Event, Thread

from django.db import transaction
from django.db.models import Q

from portal.db import claim_batch, committed_asynchronously
from portal.exceptions import ObjectMissing, StorageError
from portal.logs import get_logger
from portal.models import FileDeletion, UploadFile
from portal.services.cleanup_context import (
    FOREIGN_SAMPLE_SIZE,
    CleanupContext,
    StepResult,
    StepTally,
    cleanup_step,
)
from portal.services.outbox import emit_events
from portal.services.sessions import FileInfo
from portal.storage import get_storage, keys
from portal.storage.base import LIST_PAGE_SIZE

log = get_logger(__name__)

STEP = "reconcile_storage"
# A result lists at most this many orphan keys and missing files; the counts stay exact.
KEY_SAMPLE_SIZE = 100
AGGREGATE_TYPE = "upload_file"


@dataclass(frozen=True)
class ReconcileResult(StepResult):
    """A ``StepResult`` (``deleted``: orphans deleted, in a dry run found; ``foreign``:
    keys not of the portal's shape, kept) with reconciliation's own counts."""

    scanned: int = 0  # objects under the final prefix
    missing: int = 0  # stored files whose object is gone, now ``missing``
    kept: int = 0  # own-shape objects not proven orphans (too young, or a row exists)
    orphan_keys: tuple[str, ...] = ()  # the first KEY_SAMPLE_SIZE orphans
    missing_file_ids: tuple[str, ...] = ()  # the first KEY_SAMPLE_SIZE missing files

    OWN_COUNTS = ("scanned", "missing", "kept")
    SAMPLES = ("orphan_keys", "missing_file_ids", "foreign_sample")

    def counts(self) -> dict:
        """The counts, and the bounded samples, as the ``CleanupRun`` records them."""
        counts = {name: getattr(self, name) for name in (*StepResult.COUNTS, *self.OWN_COUNTS)}
        return counts | {name: list(getattr(self, name)) for name in self.SAMPLES}


@dataclass
class _Tally(StepTally):
    scanned: int = 0
    missing: int = 0
    kept: int = 0
    orphan_keys: list[str] = field(default_factory=list)
    missing_file_ids: list[str] = field(default_factory=list)

    def sample(self, name: str, item: str) -> None:
        if len(getattr(self, name)) < KEY_SAMPLE_SIZE:
            getattr(self, name).append(item)

    def result(self) -> ReconcileResult:
        return ReconcileResult(
            **{name: getattr(self, name) for name in StepResult.COUNTS if hasattr(self, name)},
            **{name: getattr(self, name) for name in ReconcileResult.OWN_COUNTS},
            dry_run=self.dry_run,
            errors=tuple(self.errors),
            foreign_sample=tuple(self.foreign_sample),
            orphan_keys=tuple(self.orphan_keys),
            missing_file_ids=tuple(self.missing_file_ids),
        )


@cleanup_step
def reconcile_storage(ctx: CleanupContext) -> ReconcileResult:
    """Reconcile the final prefix of the storage with the ``UploadFile`` rows (see module)."""
    tally = _Tally(dry_run=ctx.dry_run)
    page_size = min(ctx.batch_size, LIST_PAGE_SIZE)
    for page in _read_ahead(ctx.storage.iter_final_pages(page_size=page_size)):
        _reconcile_page(page, ctx, tally)
    _find_missing(ctx, tally)
    result = tally.result()
    if result.foreign:
        sample = list(result.foreign_sample[:FOREIGN_SAMPLE_SIZE])
        log.info("cleanup.foreign_objects", step=STEP, count=result.foreign, sample=sample)
    log.info("reconcile.finished", dry_run=ctx.dry_run, **StepResult.counts(result))
    return result


def _read_ahead(pages: Iterator[list]) -> Iterator[list]:
    """The listing's pages, the next ones read in a worker thread while this one is
    checked against the database: at most three pages are held at a time."""
    ahead: Queue = Queue(maxsize=1)
    stop = Event()

    def offer(item) -> bool:
        while not stop.is_set():
            with suppress(Full):
                ahead.put(item, timeout=0.1)
                return True
        return False  # the reader has stopped

    def read():
        try:
            for page in pages:
                if not offer(page):
                    return
        except BaseException as exc:  # handed to the reader, who raises it
            offer(exc)
            return
        offer(_END)

    Thread(target=contextvars.copy_context().run, args=(read,), daemon=True).start()
    try:
        while (page := ahead.get()) is not _END:
            if isinstance(page, BaseException):
                raise page
            yield page
    finally:
        stop.set()


_END = object()


def _reconcile_page(page, ctx: CleanupContext, tally: _Tally) -> None:
    tally.scanned += len(page)
    owned = {}  # file id → [objects]
    for obj in page:
        file_id = keys.final_key_file_id(ctx.storage.final_prefix, obj.key)
        if file_id is None:
            tally.note_foreign(obj.key)
        else:
            owned.setdefault(file_id, []).append(obj)
    rows = dict(UploadFile.objects.filter(pk__any=list(owned)).values_list("pk", "storage_key"))
    orphan_before = ctx.now - ctx.grace
    seen, orphans = [], []
    for file_id, objects in owned.items():
        for obj in objects:
            if file_id not in rows and obj.last_modified and obj.last_modified < orphan_before:
                orphans.append(obj)
            else:
                tally.kept += 1
                if rows.get(file_id) == obj.key:
                    seen.append(file_id)
    if seen and not ctx.dry_run:
        # A hint only (a file not marked is confirmed one by one): a commit lost in a
        # crash costs nothing, so it need not wait for the disk, and a row another run
        # holds is skipped rather than waited for (overlapping runs, each marking rows
        # the other is claiming, deadlocked on a plain UPDATE).
        with committed_asynchronously():
            claim_batch(
                UploadFile.objects.filter(pk__any=seen),
                size=len(seen),
                values={"storage_seen_at": ctx.now},
            )
    _delete_orphans(orphans, ctx, tally)


def _delete_orphans(orphans, ctx: CleanupContext, tally: _Tally) -> None:
    for obj in orphans:
        if ctx.dry_run:
            log.info(
                "reconcile.orphan", key=obj.key, size=obj.size, last_modified=obj.last_modified
            )
        else:
            try:
                ctx.storage.delete_final(obj.key)
            except StorageError as exc:
                tally.note_failures(STEP, {obj.key: str(exc)})
                continue
            log.info("cleanup.item_deleted", step=STEP, key=obj.key, size=obj.size)
        tally.deleted += 1
        tally.bytes_reclaimed += obj.size
        tally.sample("orphan_keys", obj.key)


def _find_missing(ctx: CleanupContext, tally: _Tally) -> None:
    """Stored files of this adapter the walk did not see, confirmed one by one."""
    storage, now = ctx.storage, ctx.now
    unseen = (
        UploadFile.objects.stored()
        .filter(
            storage_backend=storage.backend,
            storage_bucket=storage.bucket,
            storage_key__startswith=storage.final_prefix,
            stored_at__lt=now,
        )
        .filter(Q(storage_seen_at__isnull=True) | Q(storage_seen_at__lt=now))
        .filter(Q(retention_claimed_until__isnull=True) | Q(retention_claimed_until__lt=now))
    )
    candidates = unseen.values_list("pk", "storage_key").order_by("pk").iterator(ctx.batch_size)
    while batch := list(islice(candidates, ctx.batch_size)):
        gone = [pk for pk, key in batch if not _exists(storage, key)]
        marked = gone if ctx.dry_run or not gone else _mark_missing(unseen, gone, now=now)
        tally.missing += len(marked)
        for pk in marked:
            tally.sample("missing_file_ids", str(pk))


def _exists(storage, key: str) -> bool:
    try:
        storage.open(key).close()
    except ObjectMissing:
        return False
    return True


def _mark_missing(unseen, ids, *, now: datetime) -> list:
    with transaction.atomic():
        files = list(unseen.filter(pk__any=ids).select_for_update(skip_locked=True))
        marked = [f.pk for f in files]
        UploadFile.objects.filter(pk__any=marked).update(
            status=UploadFile.Status.MISSING, updated_at=now
        )
        emit_events(
            event_type="file.missing",
            aggregate_type=AGGREGATE_TYPE,
            events=(
                (
                    f.pk,
                    f"file.missing:{f.pk}:{now.isoformat()}",
                    {"file": FileInfo.of(f).as_dict(), "detected_at": now.isoformat()},
                )
                for f in files
            ),
            now=now,
        )
    if marked:
        log.warning("file.missing", count=len(marked), file_ids=[str(pk) for pk in marked])
    return marked


# -- verifying deletions (SPEC §11, OP-005) ----------------------------------------


@dataclass(frozen=True)
class DeletionCheck:
    """Every ``FileDeletion`` since a time checked against storage."""

    since: datetime | None
    checked: int = 0
    found: int = 0  # deleted objects found in storage again
    present: tuple[dict, ...] = ()  # the first KEY_SAMPLE_SIZE of them
    unchecked: int = 0  # proofs of another backend, bucket or final prefix

    @property
    def ok(self) -> bool:
        return not self.found

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat() if self.since else None,
            "ok": self.ok,
            "checked": self.checked,
            "found": self.found,
            "unchecked": self.unchecked,
            "present": list(self.present),
        }


def verify_deletions(*, since=None, storage=None) -> DeletionCheck:
    """Check that the object of every ``FileDeletion`` (deleted at or after ``since``) is
    absent from storage: a restore or a lagging replica that brings one back is listed."""
    storage = storage or get_storage()
    proofs = FileDeletion.objects.order_by("deleted_at")
    if since:
        proofs = proofs.filter(deleted_at__gte=since)
    checked = unchecked = found = 0
    present = []
    rows = proofs.values_list("file_id", "storage_backend", "storage_bucket", "storage_key")
    for file_id, backend, bucket, key in rows.iterator(chunk_size=1000):
        if (backend, bucket) != (storage.backend, storage.bucket) or not key.startswith(
            storage.final_prefix
        ):
            unchecked += 1
            continue
        checked += 1
        if _exists(storage, key):
            log.warning("deletion.object_present", file_id=str(file_id), key=key)
            found += 1
            if len(present) < KEY_SAMPLE_SIZE:
                present.append({"file_id": str(file_id), "key": key})
    return DeletionCheck(
        since=since, checked=checked, found=found, present=tuple(present), unchecked=unchecked
    )
