"""Admin registrations, one module per area."""

from portal.admin import cleanup, outbox, uploads  # noqa: F401 - registers the ModelAdmins
