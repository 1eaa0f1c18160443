# The seeded retention classes, also in transactional tests run after another
# transactional test flushed them (stored files here take the `general` class).
from tests.retention.conftest import _retention_policies  # noqa: F401
