"""Signal receivers, connected in ``PortalConfig.ready()``."""

from django.db import transaction
from kombu.exceptions import OperationalError

from portal.logs import get_logger

log = get_logger(__name__)


def kick_dispatcher(sender, event, **kwargs):
    """Dispatch right after the emitting transaction commits, instead of at the next sweep."""
    transaction.on_commit(enqueue_dispatch)


def enqueue_dispatch():
    from portal.tasks import dispatch_outbox_task

    try:
        dispatch_outbox_task.delay()
    except OperationalError as exc:
        # The delivery rows are the source of truth: the beat sweep sends them anyway.
        log.warning("dispatch.enqueue_failed", error=type(exc).__name__)
