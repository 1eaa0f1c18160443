"""Signals the portal sends. Receivers are connected in ``PortalConfig.ready()``."""

from django.dispatch import Signal

# Sent inside the emitting transaction with ``event`` (an OutboxEvent) once its
# deliveries exist. Receivers that act outside the database must defer to
# ``transaction.on_commit``: the event does not exist for anyone else until then.
event_emitted = Signal()

# Sent by the cleanup runner with ``run`` (the finished or skipped CleanupRun) after
# it is saved; metrics and other observers connect here.
cleanup_finished = Signal()
