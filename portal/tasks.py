"""Celery tasks: each calls one service and returns a JSON-able dict."""

from celery import shared_task
from django.contrib.auth import get_user_model

from portal.services.cleanup import run_cleanup
from portal.services.dispatcher import dispatch_due_deliveries


@shared_task(name="portal.tasks.dispatch_outbox_task")
def dispatch_outbox_task() -> dict:
    return dispatch_due_deliveries().as_dict()


@shared_task(name="portal.tasks.portal_cleanup_task")
def portal_cleanup_task(trigger="beat", dry_run=None, user_id=None) -> dict:
    """One cleanup run: beat sends no arguments (the light cycle: every step but the
    storage sweep); the admin sends its trigger, the dry-run button and the operator's
    id (recorded on the run), and gets every step."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    cycle = "light" if trigger == "beat" else "all"
    return run_cleanup(trigger=trigger, dry_run=dry_run, user=user, cycle=cycle).as_dict()


@shared_task(name="portal.tasks.portal_cleanup_deep_task")
def portal_cleanup_deep_task() -> dict:
    """The deep cycle (every PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES): the storage sweep."""
    return run_cleanup(trigger="beat", cycle="deep").as_dict()
