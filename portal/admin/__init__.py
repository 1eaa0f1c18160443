"""Admin registrations, one module per area."""

from portal.admin import cleanup, dashboard, outbox, uploads  # noqa: F401 - registers the ModelAdmins
