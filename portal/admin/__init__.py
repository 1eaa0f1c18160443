"""Admin registrations, one module per area."""

from portal.admin import (  # noqa: F401 - registers the ModelAdmins
    cleanup,
    dashboard,
    outbox,
    retention,
    uploads,
)
