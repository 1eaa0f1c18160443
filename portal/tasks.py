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
    """One cleanup run: beat sends no arguments; the admin sends its trigger, the dry-run
    button and the operator's id (recorded on the run)."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return run_cleanup(trigger=trigger, dry_run=dry_run, user=user).as_dict()
