"""Celery tasks: each calls one service and returns a JSON-able dict."""

from celery import shared_task

from portal.services.cleanup import run_cleanup
from portal.services.dispatcher import dispatch_due_deliveries


@shared_task(name="portal.tasks.dispatch_outbox_task")
def dispatch_outbox_task() -> dict:
    return dispatch_due_deliveries().as_dict()


@shared_task(name="portal.tasks.portal_cleanup_task")
def portal_cleanup_task() -> dict:
    """The light cycle: every step but the storage sweep."""
    return run_cleanup(trigger="beat", cycle="light").as_dict()


@shared_task(name="portal.tasks.portal_cleanup_deep_task")
def portal_cleanup_deep_task() -> dict:
    """The deep cycle (every PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES): the storage sweep."""
    return run_cleanup(trigger="beat", cycle="deep").as_dict()
