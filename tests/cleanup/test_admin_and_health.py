"""The operator's views of cleanup: admin history, buttons and switches, /health/cleanup."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from portal.models import CleanupControl, CleanupRun, UploadSession
from portal.services.cleanup import run_cleanup
from portal.tasks import portal_cleanup_task
from tests.cleanup.helpers import TTL
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db
RUN_URL = "admin:portal_cleanuprun_run"
CHANGELIST = "admin:portal_cleanuprun_changelist"


def staff(*permissions):
    user = make_user(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_post(client, url, data):
    """POST as a browser would: with the CSRF token the page set."""
    client.get(reverse(CHANGELIST))
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def test_history_shows_runs_buttons_and_effective_settings_to_operators(fs_storage):
    run_cleanup(trigger="beat")
    client = staff("view_cleanuprun", "run_cleanup")

    page = client.get(reverse(CHANGELIST)).content.decode()

    assert "Run cleanup now" in page and "Dry run" in page
    assert "PORTAL_CLEANUP_GRACE_MINUTES" in page and "PORTAL_CLEANUP_BATCH_SIZE" in page
    assert "beat" in page and "success" in page


def test_history_is_read_only(fs_storage):
    run = run_cleanup(trigger="beat")
    client = staff("view_cleanuprun", "change_cleanuprun", "delete_cleanuprun", "run_cleanup")
    change = reverse("admin:portal_cleanuprun_change", args=[run.run_id])

    page = client.get(change).content.decode()

    assert 'name="_save"' not in page
    assert (
        client.get(reverse("admin:portal_cleanuprun_delete", args=[run.run_id])).status_code == 403
    )
    assert client.get(reverse("admin:portal_cleanuprun_add")).status_code == 403


@pytest.fixture
def queued(monkeypatch):
    """The cleanup tasks the admin queues, captured instead of sent to the broker."""
    sent = []
    monkeypatch.setattr(portal_cleanup_task, "delay", lambda **kwargs: sent.append(kwargs))
    return sent


@pytest.mark.parametrize(("button", "dry_run"), [("run", None), ("dry_run", True)])
def test_run_buttons_queue_the_cleanup_task_as_admin_with_the_user(
    fs_storage, queued, button, dry_run
):
    make_session(status=UploadSession.Status.INIT, last_activity_at=timezone.now() - 2 * TTL)
    client = staff("view_cleanuprun", "run_cleanup")

    response = csrf_post(client, reverse(RUN_URL), {button: "1"})

    # Nothing ran inside the request: the task was queued, and the page says so.
    assert response.status_code == 302 and response.url == reverse(CHANGELIST)
    assert not CleanupRun.objects.exists()
    assert "was queued" in client.get(reverse(CHANGELIST)).content.decode()
    user = response.wsgi_request.user
    assert queued == [{"trigger": "admin", "dry_run": dry_run, "user_id": user.pk}]
    # What a worker then runs is recorded as the admin's run, by that operator.
    portal_cleanup_task.apply(kwargs=queued[0])
    run = CleanupRun.objects.get()
    assert (run.trigger, run.dry_run, run.status, run.requested_by) == (
        "admin",
        bool(dry_run),
        "success",
        user,
    )
    assert UploadSession.objects.active().count() == (1 if dry_run else 0)


def test_without_the_permission_no_buttons_and_no_runs(fs_storage, queued):
    client = staff("view_cleanuprun")

    assert "Run cleanup now" not in client.get(reverse(CHANGELIST)).content.decode()
    assert csrf_post(client, reverse(RUN_URL), {"run": "1"}).status_code == 403
    assert not queued


def test_run_needs_post_and_a_csrf_token(fs_storage, queued):
    client = staff("view_cleanuprun", "run_cleanup")

    assert client.get(reverse(RUN_URL)).status_code == 405
    assert client.post(reverse(RUN_URL), {"run": "1"}).status_code == 403
    assert not queued


def test_pause_switch_is_edited_in_the_admin_and_obeyed_by_the_next_run(fs_storage):
    client = staff("view_cleanupcontrol", "change_cleanupcontrol")
    changelist = client.get(reverse("admin:portal_cleanupcontrol_changelist"))
    change_url = reverse("admin:portal_cleanupcontrol_change", args=[1])
    assert change_url in changelist.content.decode()

    response = client.post(
        change_url,
        {
            "paused": "on",
            "note": "storage migration",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )

    assert response.status_code == 302
    assert CleanupControl.current().paused is True
    assert run_cleanup(trigger="beat").status == "skipped"


# -- /health/cleanup ----------------------------------------------------------------


def health(client):
    response = client.get("/health/cleanup")
    return response.status_code, response.json()


def test_health_is_503_before_any_run_when_no_schedule_says_the_deploy_is_fresh(client):
    status, body = health(client)

    assert status == 503
    assert (body["healthy"], body["last_run"]) == (False, None)


def test_health_reports_the_last_run_its_counts_and_the_last_24_hours(client, fs_storage):
    make_session(status=UploadSession.Status.INIT, last_activity_at=timezone.now() - 2 * TTL)
    run_cleanup(trigger="beat")
    last = run_cleanup(trigger="command")

    status, body = health(client)

    assert status == 200
    assert body["healthy"] is True
    assert body["last_run"]["id"] == last.run_id
    assert body["last_run"]["trigger"] == "command"
    assert body["last_run"]["counts"]["total"]["deleted"] == 0
    assert body["last_24h"] == {"deleted": 0, "failed": 0, "expired": 1}
    assert "PORTAL" not in str(body) and "AWS" not in str(body)


def test_health_is_503_when_no_run_succeeded_within_three_intervals(client, fs_storage, settings):
    settings.PORTAL_CLEANUP_INTERVAL_MINUTES = 10
    run_cleanup(trigger="beat", now=timezone.now() - timedelta(minutes=31))
    CleanupControl.objects.update_or_create(pk=1, defaults={"paused": True})
    run_cleanup(trigger="beat")  # skipped: not a success

    status, body = health(client)

    assert status == 503
    assert (body["last_run"]["status"], body["paused"]) == ("skipped", True)


def test_health_shows_the_next_run_from_the_beat_schedule(client, fs_storage):
    last_run_at = timezone.now() - timedelta(minutes=4)
    PeriodicTask.objects.create(
        name="portal-cleanup",
        task="portal.tasks.portal_cleanup_task",
        interval=IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES),
        last_run_at=last_run_at,
    )
    run_cleanup(trigger="beat")

    _, body = health(client)

    assert body["next_run_at"] == (last_run_at + timedelta(minutes=10)).isoformat()


def test_health_counts_only_live_runs_a_forced_dry_run_turns_it_503(client, fs_storage, settings):
    settings.PORTAL_CLEANUP_INTERVAL_MINUTES = 10
    now = timezone.now()
    run_cleanup(trigger="beat", now=now - timedelta(minutes=31))  # the last live success
    CleanupControl.objects.update_or_create(pk=1, defaults={"force_dry_run": True})
    dry = run_cleanup(trigger="beat", now=now - timedelta(minutes=1))
    assert (dry.status, dry.dry_run) == ("success", True)

    status, body = health(client)

    assert status == 503
    assert (body["healthy"], body["dry_run_forced"], body["paused"]) == (False, True, False)
    assert body["last_run"]["dry_run"] is True


def test_health_shows_a_forced_dry_run_by_setting(client, fs_storage, settings):
    settings.PORTAL_CLEANUP_DRY_RUN = True

    assert health(client)[1]["dry_run_forced"] is True


def cleanup_schedule(created_ago):
    task = PeriodicTask.objects.create(
        name="portal-cleanup",
        task="portal.tasks.portal_cleanup_task",
        interval=IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES),
    )
    # date_changed is auto_now; a schedule that never ran was last changed at creation.
    PeriodicTask.objects.filter(pk=task.pk).update(date_changed=timezone.now() - created_ago)
    return task


def test_a_fresh_deploy_is_healthy_until_three_intervals_after_its_schedule(
    client, fs_storage, settings
):
    settings.PORTAL_CLEANUP_INTERVAL_MINUTES = 10
    cleanup_schedule(created_ago=timedelta(minutes=29))

    assert health(client)[0] == 200
    # Dry runs alone do not end the fresh-deploy allowance early, nor extend it.
    run_cleanup(trigger="beat", dry_run=True)
    assert health(client)[0] == 200
    PeriodicTask.objects.update(date_changed=timezone.now() - timedelta(minutes=31))
    assert health(client)[0] == 503


def test_a_schedule_beat_keeps_sending_does_not_stay_fresh_forever(client, fs_storage, settings):
    # Beat saves the row at every send, so date_changed is always recent: the schedule's
    # age must come from its sends, or dry runs alone would look healthy for ever.
    settings.PORTAL_CLEANUP_INTERVAL_MINUTES = 10
    now = timezone.now()
    task = cleanup_schedule(created_ago=timedelta(0))
    PeriodicTask.objects.filter(pk=task.pk).update(
        last_run_at=now - timedelta(minutes=1), total_run_count=4, date_changed=now
    )
    run_cleanup(trigger="beat", dry_run=True)

    assert health(client)[0] == 503
