"""Celery tasks: each calls one service and returns a JSON-able dict.

Every portal task goes to ``PORTAL_CELERY_QUEUE`` (when set), however it is sent:
beat, the dispatch kick, the admin's "Run cleanup now" or ``.delay()``.
"""

from celery import Task, _state, shared_task
from django.contrib.auth import get_user_model

from portal import conf
from portal.services.cleanup import run_cleanup
from portal.services.dispatcher import dispatch_due_deliveries


def celery_app_configured() -> bool:
    """Whether the host created a Celery app; else sending would go to Celery's fallback
    app and its default broker (amqp://guest@localhost//)."""
    return any(app.main != "default" for app in list(_state._get_active_apps()))


class PortalTask(Task):
    def apply_async(self, args=None, kwargs=None, **options):
        queue = conf.celery_queue()
        if queue and not options.get("queue"):
            options["queue"] = queue
        return super().apply_async(args, kwargs, **options)


@shared_task(name="portal.tasks.dispatch_outbox_task", base=PortalTask)
def dispatch_outbox_task() -> dict:
    return dispatch_due_deliveries().as_dict()


@shared_task(name="portal.tasks.portal_cleanup_task", base=PortalTask)
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
