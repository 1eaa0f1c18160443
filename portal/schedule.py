"""The portal's periodic tasks: the one list of them, and its copy in django-celery-beat.

``ENTRIES`` is the schedule. ``install()`` writes it to django-celery-beat's tables
(``PeriodicTask`` with an ``IntervalSchedule``) after ``migrate`` and when beat
starts, so any host running beat with the ``DatabaseScheduler`` runs it without
wiring of its own, every ``PORTAL_*`` interval as set when beat (re)starts. An
operator may change an interval or disable an entry in the admin; the change holds
until beat restarts (``enabled`` is never touched here). Readers ask
``interval()`` and ``next_run()``, which read the row beat really runs and fall back
to the setting where there is none.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections

from portal import conf
from portal.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Entry:
    name: str  # the PeriodicTask's name
    task: str  # the registered Celery task name
    every: Callable[[], timedelta]  # the setting's interval, read when installed


CLEANUP = "portal-cleanup"
ENTRIES = [
    Entry(CLEANUP, "portal.tasks.portal_cleanup_task", conf.cleanup_interval),
    # Retention (SPEC §10): the storage sweep and reconciliation on their own, longer cycle.
    Entry(
        "portal-cleanup-deep", "portal.tasks.portal_cleanup_deep_task", conf.cleanup_deep_interval
    ),
    Entry(
        "portal-dispatch-outbox", "portal.tasks.dispatch_outbox_task", conf.outbox_sweep_interval
    ),
]


def _entry(name: str) -> Entry:
    return next(entry for entry in ENTRIES if entry.name == name)


def _beat_tables_ready(using: str) -> bool:
    if not apps.is_installed("django_celery_beat"):
        return False
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask._meta.db_table in connections[using].introspection.table_names()


def install(*, using: str = DEFAULT_DB_ALIAS) -> int:
    """Create or update every entry's ``PeriodicTask``; return how many were written."""
    if not _beat_tables_ready(using):
        return 0
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for entry in ENTRIES:
        seconds = max(1, round(entry.every().total_seconds()))
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=seconds, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.using(using).update_or_create(
            name=entry.name,
            defaults={
                "task": entry.task,
                "interval": interval,
                "crontab": None,
                "solar": None,
                "clocked": None,
                "queue": conf.celery_queue(),
            },
        )
    log.info("schedule.installed", entries=len(ENTRIES), queue=conf.celery_queue())
    return len(ENTRIES)


def periodic_task(name: str = CLEANUP):
    """The enabled ``PeriodicTask`` with an interval that beat runs for ``name``, if any."""
    if not apps.is_installed("django_celery_beat"):
        return None
    from django_celery_beat.models import PeriodicTask

    return (
        PeriodicTask.objects.filter(name=name, enabled=True, interval__isnull=False)
        .select_related("interval")
        .first()
    )


def interval(name: str = CLEANUP) -> timedelta:
    """The interval beat runs ``name`` at: its enabled ``PeriodicTask``, else the setting."""
    task = periodic_task(name)
    return task.interval.schedule.run_every if task else _entry(name).every()


def next_run(name: str = CLEANUP) -> datetime | None:
    """When beat next sends ``name``; None when it has no enabled interval schedule."""
    task = periodic_task(name)
    if task is None:
        return None
    since = task.last_run_at or task.start_time or task.date_changed
    return since + task.interval.schedule.run_every
