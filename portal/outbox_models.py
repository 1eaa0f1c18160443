"""The outbox models (SPEC §5): webhook endpoints, events, and their deliveries.

Imported by ``portal.models``, which is where Django finds them.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.models import TimestampedModel


class WebhookEndpoint(TimestampedModel):
    name = models.CharField(max_length=100, blank=True)
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=255)
    event_types = models.JSONField(
        default=list, blank=True, help_text="Exact event types to receive; empty means all."
    )
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True)

    def __str__(self):
        return self.name or self.url

    def accepts(self, event_type):
        return not self.event_types or event_type in self.event_types


class OutboxEvent(TimestampedModel):
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=255)

    class Meta:
        # Not unique=True: on PostgreSQL that adds a LIKE-only index no query reads.
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="portal_event_key_uniq"),
        ]
        indexes = [
            models.Index(
                fields=["aggregate_type", "aggregate_id"], name="portal_event_aggregate_idx"
            ),
            models.Index(fields=["event_type", "created_at"], name="portal_event_type_idx"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.pk}"


class OutboxDeliveryQuerySet(models.QuerySet):
    def due(self, now):
        return self.filter(status=OutboxDelivery.Status.PENDING, next_attempt_at__lte=now)

    def dead(self):
        return self.filter(status=OutboxDelivery.Status.FAILED)


class OutboxDelivery(TimestampedModel):
    """Delivery state of one event to one destination (the runner or an endpoint)."""

    RUNNER = "runner"

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    # "runner" for PORTAL_RUNNER_ENDPOINT, else "endpoint:<id>"; stable even if the
    # endpoint row is deleted later.
    destination = models.CharField(max_length=64)
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Set while a dispatcher holds the delivery; a claim past next_attempt_at is stale.
    claim_token = models.UUIDField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = OutboxDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "outbox deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "destination"], name="portal_delivery_destination_uniq"
            ),
        ]
        indexes = [
            # dispatch_due_deliveries: pending rows by due time.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="portal_delivery_due_idx",
            ),
            # prune_outbox: delivered rows by age.
            models.Index(
                fields=["delivered_at"],
                condition=Q(status="delivered"),
                name="portal_delivery_done_idx",
            ),
            # Scrape-time gauges (portal.metrics.gauges): the oldest pending delivery, and
            # the count of dead ones, from small partial indexes whatever the table's size.
            models.Index(
                fields=["created_at"],
                condition=Q(status="pending"),
                name="portal_delivery_pending_idx",
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(status="failed"),
                name="portal_delivery_dead_idx",
            ),
        ]

    def __str__(self):
        return f"{self.event_id} → {self.destination} ({self.status})"
