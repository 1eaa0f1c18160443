"""The transactional outbox: events are rows written with the change they report."""

import json

from django.db import connection
from django.utils import timezone

from portal import conf
from portal.db import NEW_ID_SQL
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
    now = now or timezone.now()
    event_id = new_id()
    values = {
        "id": event_id,
        "event_type": event_type,
        "payload": _payload(event_type, event_id, now, body),
        "aggregate_type": aggregate_type,
        "aggregate_id": str(aggregate_id),
        "idempotency_key": idempotency_key,
    }
    # Inserted unless the key exists (one statement on PostgreSQL), then read only if so.
    if not _insert_events([{**values, "id": str(event_id)}], now):
        return OutboxEvent.objects.get(idempotency_key=idempotency_key)
    values.update(created_at=now, updated_at=now)
    names = [field.attname for field in OutboxEvent._meta.concrete_fields]  # from_db's order
    event = OutboxEvent.from_db(connection.alias, names, [values[name] for name in names])
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
    now = now or timezone.now()
    records = []
    for aggregate_id, key, body in events:
        event_id = new_id()
        records.append(
            {
                "id": str(event_id),
                "event_type": event_type,
                "payload": _payload(event_type, event_id, now, body),
                "aggregate_type": aggregate_type,
                "aggregate_id": str(aggregate_id),
                "idempotency_key": key,
            }
        )
    if not records:
        return 0
    inserted = _insert_events(records, now)
    events_emitted(event_type, inserted, now=now)
    return len(inserted)


def events_emitted(event_type: str, event_ids: list, *, now) -> None:
    """After inserting events of ``event_type`` (ids ``event_ids``) in the current
    transaction: their pending deliveries, one log line, one dispatcher kick."""
    if not event_ids:
        return
    destinations = list(destinations_for(event_type))
    OutboxDelivery.objects.bulk_create(
        OutboxDelivery(
            event_id=event_id, destination=destination, endpoint=endpoint, next_attempt_at=now
        )
        for event_id in event_ids
        for destination, endpoint in destinations
    )
    log.info("event.emitted", event_type=event_type, count=len(event_ids))
    event_emitted.send(sender=OutboxEvent, event=OutboxEvent.objects.get(pk=event_ids[0]))


def insert_events_sql(
    *,
    event_type: str,
    aggregate_type: str,
    rows: str,
    aggregate_id: str,
    key: str,
    body: str,
    now,
) -> tuple[str, list]:
    """PostgreSQL: ``INSERT … SELECT … RETURNING id`` of the events ``emit_events`` would
    write, one per row of ``rows``, for a ``WITH`` query whose earlier part makes the
    change they report. ``rows`` names a relation; ``aggregate_id``, ``key`` (the
    idempotency key) and ``body`` (a jsonb object) are SQL expressions over its row
    ``r``, without parameters (put those in ``rows``). Pass the ids returned to
    ``events_emitted``. Payloads and ids (``NEW_ID_SQL``) are made where the rows are:
    nothing travels to Python and back.
    """
    meta, qn = OutboxEvent._meta, connection.ops.quote_name
    names = (*EVENT_COLUMNS, "created_at", "updated_at")
    columns = ", ".join(qn(meta.get_field(name).column) for name in names)
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) "
        "SELECT r.new_id, %s, jsonb_build_object('event_type', %s, 'event_id', r.new_id::text,"
        f" 'occurred_at', %s) || {body}, %s, {aggregate_id}, {key}, %s, %s"
        f" FROM (SELECT f.*, {NEW_ID_SQL} AS new_id FROM {rows} f) r "
        f"ON CONFLICT ({qn(meta.get_field('idempotency_key').column)}) DO NOTHING "
        f"RETURNING {qn(meta.pk.column)}"
    )
    return sql, [event_type, event_type, now.isoformat(), aggregate_type, now, now]


EVENT_COLUMNS = ("id", "event_type", "payload", "aggregate_type", "aggregate_id", "idempotency_key")


def _insert_events(records: list[dict], now) -> list:
    """Insert the events whose idempotency key is new; return their ids.

    On PostgreSQL one statement reads the whole batch from one JSON document
    (``jsonb_array_elements``): Django's bulk insert sends each payload as an element
    of a text array, whose escaping cost more than the rest of a batch together.
    """
    if connection.vendor != "postgresql":
        keys = [record["idempotency_key"] for record in records]
        emitted = set(
            OutboxEvent.objects.filter(idempotency_key__in=keys).values_list(
                "idempotency_key", flat=True
            )
        )
        rows = [
            OutboxEvent(**record, created_at=now)
            for record in records
            if record["idempotency_key"] not in emitted
        ]
        OutboxEvent.objects.bulk_create(rows)
        return [row.pk for row in rows]
    meta, qn = OutboxEvent._meta, connection.ops.quote_name
    columns = {name: qn(meta.get_field(name).column) for name in EVENT_COLUMNS}
    values = {name: f"e->>'{name}'" for name in EVENT_COLUMNS}
    values.update(id="(e->>'id')::uuid", payload="e->'payload'")
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(columns.values())}, "
        f"{qn(meta.get_field('created_at').column)}, {qn(meta.get_field('updated_at').column)}) "
        f"SELECT {', '.join(values[name] for name in EVENT_COLUMNS)}, %s, %s "
        "FROM jsonb_array_elements(%s::jsonb) AS e "
        f"ON CONFLICT ({columns['idempotency_key']}) DO NOTHING RETURNING {columns['id']}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, now, json.dumps(records)])
        return [row[0] for row in cursor.fetchall()]


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
