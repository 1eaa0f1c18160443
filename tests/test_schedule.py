"""The app's own beat schedule, its queue, and what a host without Celery is told."""

from datetime import timedelta
from unittest import mock

import pytest
from celery.signals import before_task_publish
from django.core import checks
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from portal import schedule
from portal.models import CleanupRun
from portal.receivers import enqueue_dispatch
from portal.selectors.cleanup import effective_settings
from portal.tasks import dispatch_outbox_task, portal_cleanup_task

pytestmark = pytest.mark.django_db


def installed():
    return {
        task.name: (task.task, task.interval.schedule.run_every, task.queue, task.enabled)
        for task in PeriodicTask.objects.select_related("interval").filter(
            name__startswith="portal-"
        )
    }


def test_migrate_installs_every_entry_with_the_setting_intervals():
    # The test database was migrated: the rows are there without any host wiring.
    assert installed() == {
        "portal-cleanup": ("portal.tasks.portal_cleanup_task", timedelta(minutes=10), None, True),
        "portal-cleanup-deep": (
            "portal.tasks.portal_cleanup_deep_task",
            timedelta(hours=6),
            None,
            True,
        ),
        "portal-dispatch-outbox": (
            "portal.tasks.dispatch_outbox_task",
            timedelta(seconds=30),
            None,
            True,
        ),
    }
    assert {entry.name for entry in schedule.ENTRIES} == set(installed())


@override_settings(PORTAL_CLEANUP_INTERVAL_MINUTES=0.05, PORTAL_CELERY_QUEUE="portal")
def test_install_follows_the_settings_and_keeps_an_operators_disable():
    PeriodicTask.objects.filter(name="portal-dispatch-outbox").update(enabled=False)

    call_command("migrate", verbosity=0)  # post_migrate installs again

    rows = installed()
    assert rows["portal-cleanup"][1:] == (timedelta(seconds=3), "portal", True)
    assert rows["portal-dispatch-outbox"][2:] == ("portal", False)


def edit_in_admin(name, **interval):
    task = PeriodicTask.objects.get(name=name)
    task.interval = IntervalSchedule.objects.create(**interval)
    task.save()
    return task


@override_settings(PORTAL_CLEANUP_INTERVAL_MINUTES=10)
def test_health_reads_the_interval_beat_runs_not_the_setting(client):
    edit_in_admin("portal-cleanup", every=1, period=IntervalSchedule.HOURS)
    forty_minutes_ago = timezone.now() - timedelta(minutes=40)
    CleanupRun.objects.create(
        trigger="beat",
        status="success",
        started_at=forty_minutes_ago,
        finished_at=forty_minutes_ago,
    )

    body = client.get("/health/cleanup").json()

    # 40 minutes is past three 10-minute intervals, but within three hourly ones.
    assert (body["healthy"], body["interval_minutes"]) == (True, 60)
    assert schedule.interval() == timedelta(hours=1)
    assert effective_settings()["interval in minutes (beat schedule)"] == 60


@override_settings(PORTAL_CLEANUP_INTERVAL_MINUTES=7)
def test_interval_falls_back_to_the_setting_without_an_enabled_row(client):
    PeriodicTask.objects.filter(name="portal-cleanup").update(enabled=False)

    assert schedule.interval() == timedelta(minutes=7)
    assert schedule.next_run() is None
    assert client.get("/health/cleanup").json()["next_run_at"] is None


@pytest.fixture
def published():
    routes = []

    def record(sender=None, routing_key=None, **kwargs):
        routes.append((sender, routing_key))

    before_task_publish.connect(record, weak=False)
    yield routes
    before_task_publish.disconnect(record)


@pytest.mark.parametrize("queue", ["portal", ""])
def test_every_portal_task_goes_to_the_configured_queue(queue, published, settings):
    settings.PORTAL_CELERY_QUEUE = queue
    expected = queue or "celery"  # "": the Celery app's default queue

    portal_cleanup_task.delay()
    enqueue_dispatch()
    dispatch_outbox_task.apply_async(queue="explicit")  # an explicit queue still wins

    assert published == [
        ("portal.tasks.portal_cleanup_task", expected),
        ("portal.tasks.dispatch_outbox_task", expected),
        ("portal.tasks.dispatch_outbox_task", "explicit"),
    ]


def test_a_host_without_a_celery_app_is_warned_and_publishes_nothing(published):
    with mock.patch("portal.tasks.celery_app_configured", return_value=False):
        enqueue_dispatch()
        ids = [message.id for message in checks.run_checks()]

    assert published == []
    assert "portal.W010" in ids
    assert "portal.W010" not in [message.id for message in checks.run_checks()]


def test_a_host_without_django_celery_beat_is_warned(settings):
    apps = [app for app in settings.INSTALLED_APPS if app != "django_celery_beat"]
    with override_settings(INSTALLED_APPS=apps):
        ids = [message.id for message in checks.run_checks()]

    assert "portal.W011" in ids
