"""Admin registrations, one module per area."""

from portal.admin import cleanup, outbox, retention, uploads  # noqa: F401 - registers the ModelAdmins
