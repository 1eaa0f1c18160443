import importlib

import pytest
from django.apps import apps

# The upload API's client fixtures, for the retention_class tests.
from tests.api.conftest import chunk_size, small_limits, uploader  # noqa: F401

SEED = importlib.import_module("portal.migrations.0005_retention")


@pytest.fixture(autouse=True)
def _retention_policies(request):
    """The seeded classes, also in tests whose database was flushed (transactional ones)."""
    if "django_db_setup" in request.fixturenames or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("_django_db_helper")
        SEED.seed_policies(apps, None)
