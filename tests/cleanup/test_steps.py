"""Each cleanup step on its own, with the clock passed as ``now=``."""

import io
import os
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from portal.models import (
    OutboxDelivery,
    OutboxEvent,
    UploadFile,
    UploadPart,
    UploadSession,
    new_id,
)
from portal.services.cleanup import (
    cleanup_orphan_temp_parts,
    cleanup_stale_sessions,
    prune_old_failed_sessions,
    prune_outbox,
    sweep_orphan_storage_objects,
)
from portal.services.cleanup_context import ItemError, StepResult
from tests.cleanup.helpers import GRACE, NOW, TTL, RefusingStorage, temp_keys
from tests.factories import make_part, make_session

pytestmark = pytest.mark.django_db
Status = UploadSession.Status
TERMINAL = [Status.COMPLETE, Status.FAILED, Status.ABORTED]


def part_bytes(session) -> int:
    return sum(session.parts.values_list("size_bytes", flat=True))


def write_orphan(storage, session_id, part_number=1):
    """A temp object no part row references, as a crash between write and insert leaves."""
    return storage.write_temp_part(session_id, part_number, io.BytesIO(b"orphan"), max_bytes=16).key


# -- stale sessions -----------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.INIT, Status.IN_PROGRESS])
def test_idle_active_session_past_ttl_fails_as_expired_with_its_file(status):
    session = make_session(status=status, last_activity_at=NOW - TTL - timedelta(seconds=1))

    result = cleanup_stale_sessions(now=NOW)

    assert result == StepResult(expired=1)
    session.refresh_from_db()
    assert (session.status, session.failure_reason, session.finished_at) == (
        Status.FAILED,
        "expired",
        NOW,
    )
    assert session.file.status == UploadFile.Status.FAILED


def test_sessions_within_ttl_and_terminal_sessions_are_untouched():
    fresh = make_session(
        status=Status.IN_PROGRESS, last_activity_at=NOW - TTL + timedelta(seconds=1)
    )
    done = make_session(status=Status.COMPLETE, last_activity_at=NOW - 10 * TTL)

    assert cleanup_stale_sessions(now=NOW) == StepResult(expired=0)

    fresh.refresh_from_db()
    done.refresh_from_db()
    assert (fresh.status, fresh.finished_at) == (Status.IN_PROGRESS, None)
    assert (done.status, done.failure_reason) == (Status.COMPLETE, "")


def test_stale_sessions_expire_across_many_batches():
    for _ in range(7):
        make_session(status=Status.INIT, last_activity_at=NOW - 2 * TTL)

    assert cleanup_stale_sessions(now=NOW, batch_size=3) == StepResult(expired=7)
    assert not UploadSession.objects.active().exists()


def test_session_a_part_revives_before_the_expiry_update_keeps_itself_and_its_file():
    # A part lands just before the statement that expires the batch: between the batch
    # being read and the conditional UPDATE where rows cannot be locked (SQLite), before
    # the one locking UPDATE on PostgreSQL. Simulated here on the same connection.
    revived = make_session(status=Status.IN_PROGRESS, last_activity_at=NOW - 2 * TTL)
    stale = make_session(status=Status.IN_PROGRESS, last_activity_at=NOW - 2 * TTL)

    arrived = []

    def part_arrives_first(execute, sql, params, many, context):
        if not arrived and "UPDATE" in sql and "uploadsession" in sql.split(" SET")[0]:
            arrived.append(True)
            UploadSession.objects.filter(pk=revived.pk).update(last_activity_at=NOW)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(part_arrives_first):
        result = cleanup_stale_sessions(now=NOW)

    assert result == StepResult(expired=1)
    revived.refresh_from_db()
    stale.refresh_from_db()
    assert (revived.status, revived.file.status) == (
        Status.IN_PROGRESS,
        UploadFile.Status.UPLOADING,
    )
    assert (stale.status, stale.file.status) == (Status.FAILED, UploadFile.Status.FAILED)


def test_expiry_is_logged_per_batch_with_session_ids(log_events):
    sessions = [make_session(status=Status.INIT, last_activity_at=NOW - 2 * TTL) for _ in range(3)]

    cleanup_stale_sessions(now=NOW, batch_size=2)

    lines = log_events("session.expired")
    assert [line["count"] for line in lines] == [2, 1]
    assert sorted(i for line in lines for i in line["session_ids"]) == sorted(
        str(s.pk) for s in sessions
    )


def test_dry_run_counts_stale_sessions_and_changes_nothing():
    session = make_session(status=Status.IN_PROGRESS, last_activity_at=NOW - 2 * TTL)

    assert cleanup_stale_sessions(now=NOW, dry_run=True) == StepResult(expired=1, dry_run=True)
    session.refresh_from_db()
    assert session.status == Status.IN_PROGRESS


# -- parts of terminal sessions -----------------------------------------------------


@pytest.mark.parametrize("status", TERMINAL)
def test_parts_of_terminal_session_leave_storage_only_after_grace(storage, status):
    past = make_session(
        status=status, parts=2, storage=storage, finished_at=NOW - GRACE - timedelta(seconds=1)
    )
    within = make_session(
        status=status, parts=2, storage=storage, finished_at=NOW - GRACE + timedelta(seconds=1)
    )
    kept = set(within.parts.values_list("temp_storage_key", flat=True))
    size = part_bytes(past)

    result = cleanup_orphan_temp_parts(now=NOW)

    assert result == StepResult(deleted=2, bytes_reclaimed=size)
    assert temp_keys(storage) == kept
    assert not past.parts.exists()
    assert within.parts.count() == 2


def test_parts_of_active_sessions_are_never_deleted(storage):
    idle = make_session(
        status=Status.IN_PROGRESS, parts=2, storage=storage, last_activity_at=NOW - 10 * TTL
    )

    assert cleanup_orphan_temp_parts(now=NOW) == StepResult()
    assert temp_keys(storage) == set(idle.parts.values_list("temp_storage_key", flat=True))


def test_object_already_gone_counts_as_deleted(storage):
    session = make_session(
        status=Status.COMPLETE, parts=1, storage=storage, finished_at=NOW - 2 * GRACE
    )
    storage.delete_many(session.parts.values_list("temp_storage_key", flat=True))
    size = part_bytes(session)

    assert cleanup_orphan_temp_parts(now=NOW) == StepResult(deleted=1, bytes_reclaimed=size)
    assert not UploadPart.objects.exists()


def test_parts_are_deleted_in_batches(fs_storage, log_events):
    for _ in range(3):
        make_session(status=Status.FAILED, parts=3, storage=fs_storage, finished_at=NOW - 2 * GRACE)

    assert cleanup_orphan_temp_parts(now=NOW, batch_size=4).deleted == 9

    assert [e["count"] for e in log_events("cleanup.item_deleted")] == [4, 4, 1]
    assert temp_keys(fs_storage) == set()


def test_key_storage_refuses_is_counted_logged_and_kept_for_the_next_run(storage, log_events):
    session = make_session(
        status=Status.ABORTED, parts=3, storage=storage, finished_at=NOW - 2 * GRACE
    )
    refused_part = session.parts.get(part_number=2)
    refused = refused_part.temp_storage_key
    flaky = RefusingStorage(storage, lambda key: key == refused)
    size = part_bytes(session)

    result = cleanup_orphan_temp_parts(now=NOW, storage=flaky)

    assert result == StepResult(
        deleted=2,
        failed=1,
        bytes_reclaimed=size - refused_part.size_bytes,
        errors=(ItemError(item=refused, error="SlowDown"),),
    )
    assert [e["key"] for e in log_events("cleanup.item_failed")] == [refused]
    assert temp_keys(storage) == {refused}
    # Its row stays, unclaimed, so the very next run retries it.
    assert list(session.parts.values_list("temp_storage_key", "cleanup_claimed_until")) == [
        (refused, None)
    ]
    assert cleanup_orphan_temp_parts(now=NOW) == StepResult(
        deleted=1, bytes_reclaimed=refused_part.size_bytes
    )
    assert temp_keys(storage) == set()


def test_part_claimed_by_a_live_run_is_skipped_until_its_claim_expires(fs_storage):
    session = make_session(
        status=Status.COMPLETE, parts=1, storage=fs_storage, finished_at=NOW - 2 * GRACE
    )
    session.parts.update(cleanup_claimed_until=NOW + timedelta(minutes=1))

    assert cleanup_orphan_temp_parts(now=NOW).deleted == 0
    assert cleanup_orphan_temp_parts(now=NOW + timedelta(minutes=2)).deleted == 1


def test_dry_run_counts_parts_and_deletes_nothing(storage):
    session = make_session(
        status=Status.COMPLETE, parts=2, storage=storage, finished_at=NOW - 2 * GRACE
    )
    before = temp_keys(storage)

    assert cleanup_orphan_temp_parts(now=NOW, dry_run=True) == StepResult(
        deleted=2, bytes_reclaimed=part_bytes(session), dry_run=True
    )
    assert temp_keys(storage) == before
    assert UploadPart.objects.count() == 2


# -- pruning failed sessions --------------------------------------------------------


@override_settings(PORTAL_FAILED_SESSION_RETENTION_DAYS=30)
@pytest.mark.parametrize("status", [Status.FAILED, Status.ABORTED])
def test_failed_sessions_past_retention_are_pruned_with_their_files(status):
    old = make_session(status=status, finished_at=NOW - timedelta(days=30, seconds=1))
    young = make_session(status=status, finished_at=NOW - timedelta(days=29))

    assert prune_old_failed_sessions(now=NOW) == StepResult(deleted=1)

    assert not UploadSession.objects.filter(pk=old.pk).exists()
    assert not UploadFile.objects.filter(pk=old.file_id).exists()
    assert UploadSession.objects.filter(pk=young.pk).exists()


@override_settings(PORTAL_FAILED_SESSION_RETENTION_DAYS=30)
def test_prune_keeps_complete_sessions_and_sessions_that_still_have_parts():
    make_session(status=Status.COMPLETE, finished_at=NOW - timedelta(days=90))
    with_parts = make_session(status=Status.FAILED, parts=1, finished_at=NOW - timedelta(days=90))

    assert prune_old_failed_sessions(now=NOW) == StepResult(deleted=0)
    assert UploadSession.objects.count() == 2
    with_parts.parts.all().delete()
    assert prune_old_failed_sessions(now=NOW) == StepResult(deleted=1)


@override_settings(PORTAL_FAILED_SESSION_RETENTION_DAYS=0)
def test_retention_zero_turns_pruning_off():
    make_session(status=Status.FAILED, finished_at=NOW - timedelta(days=3650))

    assert prune_old_failed_sessions(now=NOW) == StepResult(deleted=0)
    assert UploadSession.objects.count() == 1


@override_settings(PORTAL_FAILED_SESSION_RETENTION_DAYS=30)
def test_dry_run_prune_counts_sessions_whose_parts_a_live_run_deletes_first():
    make_session(status=Status.FAILED, parts=2, finished_at=NOW - timedelta(days=31))

    assert prune_old_failed_sessions(now=NOW, dry_run=True) == StepResult(deleted=1, dry_run=True)
    assert UploadSession.objects.count() == 1


# -- storage sweep ------------------------------------------------------------------


def plant_outside_temp(storage) -> list[str]:
    """Old objects beside the temp prefix: the sweep must never touch them."""
    keys = ["files/planted/final.bin", "elsewhere/old.part", "tmpx/looks-like-temp.part"]
    if storage.backend == "filesystem":
        year_ago = time.time() - 365 * 86400
        for key in keys:
            path = storage.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"keep me")
            os.utime(path, (year_ago, year_ago))
    else:
        for key in keys:
            storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"keep me")
    return keys


def outside_keys_present(storage, keys) -> bool:
    if storage.backend == "filesystem":
        return all((storage.root / key).is_file() for key in keys)
    return all(storage.client.head_object(Bucket=storage.bucket, Key=key) for key in keys)


def test_sweep_deletes_only_unreferenced_temp_objects_older_than_grace(storage):
    live = make_session(status=Status.IN_PROGRESS, parts=2, storage=storage)
    referenced = set(live.parts.values_list("temp_storage_key", flat=True))
    # Part 3 of the live session is written but its row not yet committed: kept.
    in_flight = write_orphan(storage, live.pk, 3)
    orphans = {write_orphan(storage, new_id(), 1), write_orphan(storage, new_id(), 2)}
    outside = plant_outside_temp(storage)
    written = timezone.now()

    # Younger than the grace period: nothing goes.
    young = sweep_orphan_storage_objects(now=written + GRACE - timedelta(minutes=1))
    assert young == StepResult()
    assert temp_keys(storage) == referenced | orphans | {in_flight}

    result = sweep_orphan_storage_objects(now=written + GRACE + timedelta(minutes=1), batch_size=2)

    assert result == StepResult(deleted=2, bytes_reclaimed=2 * len(b"orphan"))
    assert temp_keys(storage) == referenced | {in_flight}
    assert outside_keys_present(storage, outside)


def test_sweep_dry_run_counts_and_deletes_nothing(storage):
    orphan = write_orphan(storage, new_id())
    later = timezone.now() + 2 * GRACE

    assert sweep_orphan_storage_objects(now=later, dry_run=True) == StepResult(
        deleted=1, bytes_reclaimed=len(b"orphan"), dry_run=True
    )
    assert temp_keys(storage) == {orphan}


def test_sweep_counts_and_logs_objects_storage_refuses(fs_storage, log_events):
    orphan = write_orphan(fs_storage, new_id())
    flaky = RefusingStorage(fs_storage, lambda key: True)

    result = sweep_orphan_storage_objects(now=timezone.now() + 2 * GRACE, storage=flaky)

    assert result == StepResult(failed=1, errors=(ItemError(item=orphan, error="SlowDown"),))
    assert [e["key"] for e in log_events("cleanup.item_failed")] == [orphan]


# -- outbox -------------------------------------------------------------------------


def make_event(name, *, created_at, deliveries=()):
    event = OutboxEvent.objects.create(
        event_type="file.stored",
        payload={},
        aggregate_type="file",
        aggregate_id=name,
        idempotency_key=name,
        created_at=created_at,
    )
    for number, (status, delivered_at) in enumerate(deliveries):
        OutboxDelivery.objects.create(
            event=event, destination=f"endpoint:{number}", status=status, delivered_at=delivered_at
        )
    return event


@override_settings(PORTAL_OUTBOX_RETENTION_DAYS=7)
def test_prune_outbox_deletes_only_events_fully_delivered_before_retention():
    old, recent = NOW - timedelta(days=8), NOW - timedelta(days=6)
    delivered = OutboxDelivery.Status.DELIVERED
    make_event(
        "all-delivered-long-ago", created_at=old, deliveries=[(delivered, old), (delivered, old)]
    )
    make_event("no-destination", created_at=old)
    make_event("one-pending", created_at=old, deliveries=[(delivered, old), ("pending", None)])
    make_event("one-dead", created_at=old, deliveries=[(OutboxDelivery.Status.FAILED, None)])
    make_event("delivered-recently", created_at=old, deliveries=[(delivered, recent)])
    make_event("new", created_at=recent)

    assert prune_outbox(now=NOW, dry_run=True) == StepResult(deleted=2, dry_run=True)
    assert OutboxEvent.objects.count() == 6

    assert prune_outbox(now=NOW, batch_size=1) == StepResult(deleted=2)

    assert set(OutboxEvent.objects.values_list("aggregate_id", flat=True)) == {
        "one-pending",
        "one-dead",
        "delivered-recently",
        "new",
    }
    assert OutboxDelivery.objects.count() == 4


def test_steps_read_the_configured_dry_run_setting(fs_storage):
    make_session(status=Status.INIT, last_activity_at=NOW - 2 * TTL)

    with override_settings(PORTAL_CLEANUP_DRY_RUN=True):
        assert cleanup_stale_sessions(now=NOW).dry_run is True
    assert UploadSession.objects.active().count() == 1


def test_part_rows_pointing_outside_the_temp_prefix_are_refused_not_deleted(fs_storage):
    session = make_session(status=Status.COMPLETE, finished_at=NOW - 2 * GRACE)
    make_part(session, 1)
    UploadPart.objects.update(temp_storage_key="files/precious.bin")

    result = cleanup_orphan_temp_parts(now=NOW)

    assert (result.deleted, result.failed) == (0, 1)
    assert UploadPart.objects.count() == 1
