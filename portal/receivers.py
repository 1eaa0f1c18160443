"""Signal receivers, connected in ``PortalConfig.ready()``."""

from django.db import DEFAULT_DB_ALIAS, transaction
from kombu.exceptions import OperationalError

from portal import schedule
from portal.logs import get_logger

log = get_logger(__name__)


def kick_dispatcher(sender, event, **kwargs):
    """Dispatch right after the emitting transaction commits, instead of at the next sweep."""
    transaction.on_commit(enqueue_dispatch)


def enqueue_dispatch():
    from portal.tasks import celery_app_configured, dispatch_outbox_task

    if not celery_app_configured():
        # No Celery app in this host (check portal.W010): nothing would consume the kick.
        log.debug("dispatch.enqueue_skipped", reason="no_celery_app")
        return
    try:
        dispatch_outbox_task.delay()
    except OperationalError as exc:
        # The delivery rows are the source of truth: the beat sweep sends them anyway.
        log.warning("dispatch.enqueue_failed", error=type(exc).__name__)


def install_schedule(sender, using=DEFAULT_DB_ALIAS, **kwargs):
    """After ``migrate``: the portal's periodic tasks in django-celery-beat's tables."""
    schedule.install(using=using)


def install_schedule_on_beat(sender, **kwargs):
    """When beat starts: the same, with the ``PORTAL_*`` intervals in force now."""
    schedule.install()
