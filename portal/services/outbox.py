"""The transactional outbox: events are rows written with the change they report."""

from django.utils import timezone

from portal import conf
from portal.logs import get_logger
from portal.models import OutboxDelivery, OutboxEvent, WebhookEndpoint, new_id
from portal.signals import event_emitted

log = get_logger(__name__)


def emit_event(
    *,
    event_type: str,
    body: dict,
    aggregate_type: str,
    aggregate_id,
    idempotency_key: str,
    now=None,
) -> OutboxEvent:
    """Record an event and one pending delivery per destination.

    Call inside the transaction that makes the change the event reports, so both
    commit or neither does. Emitting again with the same ``idempotency_key`` returns
    the existing event and creates nothing.
    """
    existing = OutboxEvent.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    now = now or timezone.now()
    event_id = new_id()
    payload = {
        "event_type": event_type,
        "event_id": str(event_id),
        "occurred_at": now.isoformat(),
        **body,
    }
    event = OutboxEvent.objects.create(
        id=event_id,
        event_type=event_type,
        payload=payload,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        idempotency_key=idempotency_key,
        created_at=now,
    )
    OutboxDelivery.objects.bulk_create(
        OutboxDelivery(event=event, destination=destination, endpoint=endpoint, next_attempt_at=now)
        for destination, endpoint in destinations_for(event_type)
    )
    log.info("event.emitted", event_id=str(event.pk), event_type=event_type)
    event_emitted.send(sender=OutboxEvent, event=event)
    return event


def destinations_for(event_type: str):
    """(destination, endpoint) pairs that receive ``event_type``: the runner, then endpoints."""
    if conf.runner_endpoint():
        yield OutboxDelivery.RUNNER, None
    for endpoint in WebhookEndpoint.objects.filter(is_active=True).order_by("created_at"):
        if endpoint.accepts(event_type):
            yield f"endpoint:{endpoint.pk}", endpoint
