"""The Celery app of the host project; tasks live in ``portal.tasks``."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
os.environ.setdefault("DJANGO_CONFIGURATION", "Dev")

from configurations import importer

# Only the import hook: settings load lazily, when Celery's Django fixup asks for them.
importer.install()

app = Celery("boot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs):
    # Celery keeps its hands off logging: records go through the same structlog setup.
    from django.conf import settings

    from boot.logging import apply

    apply(settings.LOGGING)
