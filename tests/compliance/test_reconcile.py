"""reconcile_storage on both adapters: orphans, missing files, foreign keys, dry run, runs."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from portal.exceptions import StorageUnavailable
from portal.models import CleanupRun, OutboxEvent, UploadFile, new_id
from portal.services.cleanup import run_cleanup
from portal.services.reconcile import reconcile_storage
from portal.storage import keys
from tests.compliance.helpers import own_key, plant, plant_foreign
from tests.environment import require, row_locked, uses_postgres
from tests.retention.helpers import exists, stored_file

pytestmark = pytest.mark.django_db
LATER = timedelta(days=1)  # past the grace period of objects written now


def scene(storage):
    """A stored file, a stored file whose object is gone, an orphan, foreign keys."""
    now = timezone.now()
    kept = stored_file(storage, stored_at=now - timedelta(days=2))
    lost = stored_file(storage, stored_at=now - timedelta(days=2))
    storage.delete_final(lost.storage_key)
    orphan = plant(storage, own_key(storage, new_id()), b"orphan!")
    return kept, lost, orphan, plant_foreign(storage)


def test_reconcile_deletes_orphans_marks_missing_and_keeps_foreign_keys(storage):
    kept, lost, orphan, foreign = scene(storage)
    now = timezone.now() + LATER

    result = reconcile_storage(now=now, storage=storage)

    assert (result.scanned, result.deleted, result.missing) == (2 + len(foreign), 1, 1)
    assert (result.foreign, result.kept, result.failed) == (len(foreign), 1, 0)
    assert result.bytes_reclaimed == len(b"orphan!")
    assert result.orphan_keys == (orphan,) and result.missing_file_ids == (str(lost.pk),)
    assert not exists(storage, orphan)
    assert exists(storage, kept.storage_key)
    kept.refresh_from_db()
    lost.refresh_from_db()
    assert kept.status == UploadFile.Status.STORED and kept.storage_seen_at == now
    assert lost.status == UploadFile.Status.MISSING
    (event,) = OutboxEvent.objects.filter(event_type="file.missing")
    assert event.aggregate_id == str(lost.pk) and event.aggregate_type == "upload_file"
    assert event.payload["file"]["storage"]["key"] == lost.storage_key


def test_reconcile_foreign_objects_survive_and_are_counted(storage):
    foreign = plant_foreign(storage)
    # Old enough, and no row, but not of the portal's own key shape.
    assert all(keys.final_key_file_id(storage.final_prefix, key) is None for key in foreign)

    result = reconcile_storage(now=timezone.now() + 30 * LATER, storage=storage)

    assert result.foreign == len(foreign) and result.deleted == 0
    assert set(result.foreign_sample) == set(foreign)
    assert all(exists(storage, key) for key in foreign)


def test_reconcile_dry_run_changes_nothing(storage):
    _, _, orphan, foreign = scene(storage)

    result = reconcile_storage(now=timezone.now() + LATER, storage=storage, dry_run=True)

    assert (result.deleted, result.missing, result.dry_run) == (1, 1, True)
    assert result.orphan_keys == (orphan,)
    assert exists(storage, orphan) and all(exists(storage, key) for key in foreign)
    assert set(UploadFile.objects.values_list("status", flat=True)) == {"stored"}
    assert not UploadFile.objects.filter(storage_seen_at__isnull=False).exists()
    assert not OutboxEvent.objects.filter(event_type="file.missing").exists()


def test_a_young_orphan_and_an_unclaimed_object_of_a_known_file_are_kept(storage):
    young = plant(storage, own_key(storage, new_id()))
    file = stored_file(storage, stored_at=timezone.now() - timedelta(days=2))
    # Own shape, its file's row exists, but it is not the object the row points at.
    stray = plant(storage, own_key(storage, file.pk, "other.pdf"))

    result = reconcile_storage(now=timezone.now(), storage=storage)

    assert (result.deleted, result.kept, result.missing) == (0, 3, 0)
    assert exists(storage, young) and exists(storage, stray)


def test_an_object_back_before_the_check_keeps_its_file_stored(storage, monkeypatch):
    # The walk missed it (a lagging listing), but it is there when confirmed one by one.
    file = stored_file(storage, stored_at=timezone.now() - timedelta(days=2))
    monkeypatch.setattr(storage, "iter_final_pages", lambda **kwargs: iter(()))

    result = reconcile_storage(now=timezone.now(), storage=storage)

    assert result.missing == 0
    file.refresh_from_db()
    assert file.status == UploadFile.Status.STORED


def test_reconcile_storage_command_records_a_cleanup_run(storage):
    _, lost, orphan, foreign = scene(storage)

    call_command("reconcile_storage", "--dry-run", stdout=StringIO())  # exit status 0
    out = StringIO()
    call_command("reconcile_storage", "--json", stdout=out)

    report = json.loads(out.getvalue())
    assert report["status"] == "success" and report["dry_run"] is False
    counts = report["counts"]["reconcile_storage"]
    assert set(report["counts"]) == {"reconcile_storage", "total"}
    assert (counts["deleted"], counts["missing"], counts["foreign"]) == (0, 1, len(foreign))
    # Written now: the orphan is younger than the grace period and stays.
    assert exists(storage, orphan)
    runs = CleanupRun.objects.order_by("started_at")
    assert [(r.trigger, r.dry_run) for r in runs] == [("command", True), ("command", False)]
    assert runs[1].counts["reconcile_storage"]["missing_file_ids"] == [str(lost.pk)]


def test_reconcile_runs_on_the_deep_cycle_only(fs_storage):
    deep = run_cleanup(trigger="beat", cycle="deep")
    light = run_cleanup(trigger="beat", cycle="light")
    assert "reconcile_storage" in deep.counts and "reconcile_storage" not in light.counts


def test_reconcile_storage_command_text_lists_the_dry_run_orphans(storage, settings):
    settings.PORTAL_CLEANUP_GRACE_MINUTES = 0
    _, _, orphan, _ = scene(storage)
    out = StringIO()
    call_command("reconcile_storage", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "dry run: nothing changed" in text
    assert f"orphan (would delete): {orphan}" in text
    assert exists(storage, orphan)


def test_reconcile_storage_command_fails_when_an_orphan_cannot_be_deleted(
    storage, settings, monkeypatch
):
    settings.PORTAL_CLEANUP_GRACE_MINUTES = 0
    orphan = plant(storage, own_key(storage, new_id()))

    def refuse(key):
        raise StorageUnavailable("storage said no")

    monkeypatch.setattr(storage, "delete_final", refuse)
    with pytest.raises(CommandError, match="partial"):
        call_command("reconcile_storage", stdout=StringIO())
    assert exists(storage, orphan)
    (run,) = CleanupRun.objects.all()
    assert run.counts["reconcile_storage"]["failed"] == 1
    assert run.errors[0]["item"] == orphan


def test_a_listing_that_fails_part_way_marks_nothing_missing(storage, monkeypatch):
    files = [stored_file(storage, stored_at=timezone.now() - timedelta(days=2)) for _ in range(3)]
    listing = storage.iter_final_pages

    def failing(**kwargs):
        yield next(listing(page_size=1))
        raise StorageUnavailable("the listing broke off")

    monkeypatch.setattr(storage, "iter_final_pages", failing)
    report = run_cleanup(trigger="command", cycle="reconcile")

    assert report.status == "failed" and "the listing broke off" in report.errors[0]["error"]
    assert UploadFile.objects.filter(pk__in=[f.pk for f in files], status="stored").count() == 3
    assert not OutboxEvent.objects.filter(event_type="file.missing").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_another_run_holds_is_not_waited_for_and_stays_stored(fs_storage):
    # Overlapping runs once deadlocked here: each marking rows seen the other held.
    require(uses_postgres(), "needs PostgreSQL: set DATABASE_URL=postgres://...")
    held, free = (stored_file(fs_storage, stored_at=timezone.now() - LATER) for _ in range(2))

    with row_locked(UploadFile.objects.filter(pk=held.pk)), connection.cursor() as cursor:
        cursor.execute("SET lock_timeout TO '5s'")  # a wait fails the test, not hangs it
        try:
            now = timezone.now()
            result = reconcile_storage(now=now, storage=fs_storage)
        finally:
            cursor.execute("RESET lock_timeout")

    assert (result.missing, result.failed, result.kept) == (0, 0, 2)
    held.refresh_from_db()
    free.refresh_from_db()
    assert held.status == free.status == UploadFile.Status.STORED
    assert held.storage_seen_at is None and free.storage_seen_at == now
