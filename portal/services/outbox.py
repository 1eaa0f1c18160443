"""The transactional outbox: events are rows written with the change they report."""

import structlog
from django.utils import timezone

from portal import conf
from portal.models import OutboxDelivery, OutboxEvent, WebhookEndpoint, new_id
from portal.signals import event_emitted

log = structlog.get_logger(__name__)


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
    event = OutboxEvent.objects.create(
        id=event_id,
        event_type=event_type,
        payload=_payload(event_type, event_id, now, body),
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


def emit_events(*, event_type: str, aggregate_type: str, events, now=None) -> int:
    """Record many events of one type, as ``emit_event`` would one by one, in a few statements.

    ``events`` yields ``(aggregate_id, idempotency_key, body)``; keys already emitted are
    skipped. Call inside the transaction that makes the changes. Returns how many were
    recorded. The dispatcher is kicked once for the whole batch.
    """
    events = list(events)
    if not events:
        return 0
    now = now or timezone.now()
    emitted = set(
        OutboxEvent.objects.filter(idempotency_key__in=[key for _, key, _ in events]).values_list(
            "idempotency_key", flat=True
        )
    )
    destinations = list(destinations_for(event_type))
    rows, deliveries = [], []
    for aggregate_id, key, body in events:
        if key in emitted:
            continue
        event_id = new_id()
        rows.append(
            OutboxEvent(
                id=event_id,
                event_type=event_type,
                payload=_payload(event_type, event_id, now, body),
                aggregate_type=aggregate_type,
                aggregate_id=str(aggregate_id),
                idempotency_key=key,
                created_at=now,
            )
        )
        deliveries.extend(
            OutboxDelivery(
                event_id=event_id, destination=destination, endpoint=endpoint, next_attempt_at=now
            )
            for destination, endpoint in destinations
        )
    OutboxEvent.objects.bulk_create(rows)
    OutboxDelivery.objects.bulk_create(deliveries)
    if rows:
        log.info("event.emitted", event_type=event_type, count=len(rows))
        event_emitted.send(sender=OutboxEvent, event=rows[0])
    return len(rows)


def _payload(event_type: str, event_id, now, body: dict) -> dict:
    return {
        "event_type": event_type,
        "event_id": str(event_id),
        "occurred_at": now.isoformat(),
        **body,
    }


def destinations_for(event_type: str):
    """(destination, endpoint) pairs that receive ``event_type``: the runner, then endpoints."""
    if conf.runner_endpoint():
        yield OutboxDelivery.RUNNER, None
    for endpoint in WebhookEndpoint.objects.filter(is_active=True).order_by("created_at"):
        if endpoint.accepts(event_type):
            yield f"endpoint:{endpoint.pk}", endpoint
