"""The retention commands and the light/deep cleanup cycles (thin callers: wiring only)."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from portal.models import FileDeletion, OutboxEvent, RetentionChange, RetentionPolicy, UploadFile
from portal.services.cleanup import run_cleanup
from portal.tasks import portal_cleanup_deep_task, portal_cleanup_task
from tests.retention.helpers import DAY, NOW, exists, stored_file

pytestmark = pytest.mark.django_db


def test_legal_hold_command_sets_and_releases_with_an_audit(fs_storage, capsys):
    files = [stored_file(fs_storage) for _ in range(2)]
    ids = [str(f.pk) for f in files]

    call_command("legal_hold", *ids, "--set", "--reason", "subpoena 4")

    assert "Held 2 file(s); 0 already were." in capsys.readouterr().out
    assert UploadFile.objects.filter(legal_hold=True, legal_hold_reason="subpoena 4").count() == 2
    call_command("legal_hold", ids[0], "--release")
    assert "Released 1 file(s)" in capsys.readouterr().out
    assert list(
        RetentionChange.objects.order_by("created_at").values_list("action", flat=True)
    ) == [
        "hold_set",
        "hold_set",
        "hold_released",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set"], "--reason is required"),
        (["not-a-uuid", "--set", "--reason", "x"], "Not file ids: not-a-uuid"),
        (["0190b6a8-0000-7000-8000-000000000000", "--set", "--reason", "x"], "No such files"),
    ],
)
def test_legal_hold_command_refuses_bad_input_and_holds_nothing(fs_storage, arguments, message):
    upload = stored_file(fs_storage)

    with pytest.raises(CommandError, match=message):
        call_command("legal_hold", str(upload.pk), *arguments)

    upload.refresh_from_db()
    assert not upload.legal_hold and not RetentionChange.objects.exists()


def test_erase_file_deletes_now_with_proof_and_is_refused_under_hold(storage, capsys):
    erased, held = stored_file(storage, stored_at=timezone.now()), stored_file(storage)
    call_command("legal_hold", str(held.pk), "--set", "--reason", "litigation")

    call_command("erase_file", str(erased.pk), "--reason", "DSR-2026-001")

    assert "Erased report.pdf" in capsys.readouterr().out
    assert not exists(storage, erased.storage_key)
    proof = FileDeletion.objects.get(file_id=erased.pk)
    assert (proof.reason, proof.note) == ("erasure_request", "DSR-2026-001")
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == 1
    with pytest.raises(CommandError, match="on legal hold"):
        call_command("erase_file", str(held.pk), "--reason", "DSR-2026-002")
    held.refresh_from_db()
    assert held.status == "stored" and exists(storage, held.storage_key)
    with pytest.raises(CommandError, match="is deleted, not stored"):
        call_command("erase_file", str(erased.pk), "--reason", "again")


def test_apply_retention_counts_earlier_later_due_and_dry_run_changes_nothing(fs_storage, capsys):
    now = timezone.now()
    recent = stored_file(fs_storage, code="financial", stored_at=now - 10 * DAY)
    old = stored_file(fs_storage, code="financial", stored_at=now - 100 * DAY)
    RetentionPolicy.objects.filter(code="financial").update(retention=timedelta(days=90))

    call_command("apply_retention", "financial", "--dry-run")

    assert "2 stored file(s); 2 earlier, 0 later, 1 become due (dry run" in capsys.readouterr().out
    old.refresh_from_db()
    assert old.expires_at == old.stored_at + timedelta(days=365)

    call_command("apply_retention", "financial")

    assert "2 earlier, 0 later, 1 become due." in capsys.readouterr().out
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.expires_at == old.stored_at + timedelta(days=90)
    assert recent.expires_at == recent.stored_at + timedelta(days=90)
    RetentionPolicy.objects.filter(code="financial").update(retention=None)
    call_command("apply_retention", "financial")
    assert "0 earlier, 2 later, 0 become due." in capsys.readouterr().out
    assert (
        not UploadFile.objects.filter(expires_at__isnull=False)
        .filter(retention_policy__code="financial")
        .exists()
    )


def test_apply_retention_names_an_unknown_class():
    with pytest.raises(CommandError, match="CODE: No retention class 'forever'"):
        call_command("apply_retention", "forever")


# -- light and deep cycles ------------------------------------------------------------


def test_the_light_cycle_skips_the_storage_sweep_and_the_deep_cycle_runs_only_it(fs_storage):
    light = run_cleanup(trigger="beat", now=NOW, cycle="light")
    deep = run_cleanup(trigger="beat", now=NOW, cycle="deep")
    everything = run_cleanup(trigger="command", now=NOW)

    assert "orphan_storage_objects" not in light.counts
    assert {"expiring_files", "expired_files", "stale_sessions"} <= set(light.counts)
    assert set(deep.counts) - {"total"} == {"orphan_storage_objects", "reconcile_storage"}
    assert set(everything.counts) == set(light.counts) | set(deep.counts)


def test_the_tasks_run_their_cycles(fs_storage):
    assert "orphan_storage_objects" not in portal_cleanup_task()["counts"]
    deep = {"orphan_storage_objects", "reconcile_storage", "total"}
    assert set(portal_cleanup_deep_task()["counts"]) == deep


def test_beat_schedules_the_deep_cycle_from_its_setting():
    from django_celery_beat.models import PeriodicTask

    from portal import schedule

    with override_settings(PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES=720):
        schedule.install()

    deep = PeriodicTask.objects.get(name="portal-cleanup-deep")
    assert deep.task == "portal.tasks.portal_cleanup_deep_task"
    assert deep.interval.schedule.run_every == timedelta(minutes=720)


def test_a_deep_interval_below_three_seconds_is_a_check_error():
    from portal.checks import check_numeric_ranges

    with override_settings(PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES=0):
        errors = check_numeric_ranges()

    assert [e.id for e in errors] == ["portal.E060"]
    assert "PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES" in errors[0].msg
