import pytest

from portal.models import OutboxDelivery, OutboxEvent, WebhookEndpoint
from portal.services.outbox import emit_event

pytestmark = pytest.mark.django_db


def emit(key: str, **body):
    return emit_event(
        event_type="file.stored",
        body=body,
        aggregate_type="upload_file",
        aggregate_id="f1",
        idempotency_key=key,
    )


def test_an_emitted_event_is_the_row_with_its_deliveries():
    WebhookEndpoint.objects.create(name="runner", url="http://127.0.0.1:9/hook", secret="s" * 32)

    event = emit("file.stored:f1", n=1)

    assert event == OutboxEvent.objects.get()
    assert event.payload == OutboxEvent.objects.get().payload
    assert event.payload["n"] == 1 and event.payload["event_id"] == str(event.pk)
    assert OutboxDelivery.objects.get().event_id == event.pk


def test_emitting_a_key_again_returns_the_first_event_and_creates_nothing():
    WebhookEndpoint.objects.create(name="runner", url="http://127.0.0.1:9/hook", secret="s" * 32)
    first = emit("file.stored:f1", n=1)

    again = emit("file.stored:f1", n=2)

    assert again.pk == first.pk and again.payload["n"] == 1
    assert OutboxEvent.objects.count() == 1
    assert OutboxDelivery.objects.count() == 1
