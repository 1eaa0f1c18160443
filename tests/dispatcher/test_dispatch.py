import base64
import json
import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from django.conf import settings
from django.test import override_settings
from standardwebhooks import Webhook

from portal.models import OutboxDelivery, WebhookEndpoint, new_id
from portal.services.dispatcher import (
    DispatchResult,
    Outcome,
    claim_due_deliveries,
    claim_lease,
    dispatch_due_deliveries,
    parse_retry_after,
    record_outcomes,
    replay_dead_deliveries,
    retry_delay,
    retry_now,
)
from portal.services.outbox import emit_event

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
WHSEC = "whsec_" + base64.b64encode(b"runner-signing-key-0123456789").decode()
SEED = 7


def seeded():
    return random.Random(SEED)


def emit(now=NOW):
    return emit_event(
        event_type="file.stored",
        body={"file": {"id": str(new_id()), "filename": "scan é.tif"}},
        aggregate_type="file",
        aggregate_id=new_id(),
        idempotency_key=str(uuid.uuid4()),
        now=now,
    )


@pytest.fixture
def runner_at(receiver):
    """Point the runner destination at a path of the receiver: ``runner_at("/ok")``."""
    # Enabled before a test's own @override_settings, so every layer unwinds in order:
    # point() writes to the innermost layer, which goes away with the test.
    with override_settings(PORTAL_RUNNER_ENDPOINT="", PORTAL_RUNNER_AUTH_SECRET=""):

        def point(path, secret=WHSEC):
            settings.PORTAL_RUNNER_ENDPOINT = f"{receiver.url}{path}"
            settings.PORTAL_RUNNER_AUTH_SECRET = secret

        yield point


def runner_delivery(event):
    return event.deliveries.get(destination=OutboxDelivery.RUNNER)


def backoff(attempt):
    return retry_delay(attempt, rng=seeded())


def test_2xx_delivers_with_a_standard_webhooks_signature(receiver, runner_at):
    runner_at("/ok")
    event = emit()

    result = dispatch_due_deliveries(now=NOW, rng=seeded())

    assert result == DispatchResult(claimed=1, delivered=1)
    delivery = runner_delivery(event)
    assert delivery.status == "delivered"
    assert delivery.delivered_at == NOW
    assert (delivery.attempts, delivery.last_status_code, delivery.claim_token) == (1, 200, None)
    [request] = receiver.requests
    assert Webhook(WHSEC).verify(request.body, request.headers) == event.payload
    compact = json.dumps(json.loads(request.body), separators=(",", ":")).encode()
    assert request.body == compact
    assert request.headers["webhook-id"] == str(event.pk)
    assert request.headers["x-webhook-delivery"] == str(event.pk)
    assert request.headers["x-webhook-event"] == "file.stored"
    assert request.headers["content-type"] == "application/json"


def test_a_plain_secret_signs_with_its_utf8_bytes(receiver):
    WebhookEndpoint.objects.create(url=f"{receiver.url}/ok", secret="plain secret ✓")
    emit()

    dispatch_due_deliveries(now=NOW)

    [request] = receiver.requests
    Webhook("plain secret ✓".encode()).verify(request.body, request.headers)


def test_webhook_id_is_stable_across_retries(receiver, runner_at):
    runner_at("/error")
    event = emit()
    dispatch_due_deliveries(now=NOW)
    dispatch_due_deliveries(now=NOW + timedelta(days=1))

    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(event.pk)] * 2


@override_settings(PORTAL_OUTBOX_BASE_DELAY_SECONDS=30, PORTAL_OUTBOX_MAX_DELAY_SECONDS=3600)
def test_5xx_retries_after_the_jittered_backoff_of_its_attempt(receiver, runner_at):
    runner_at("/error")
    event = emit()
    OutboxDelivery.objects.update(attempts=2)

    result = dispatch_due_deliveries(now=NOW, rng=seeded())

    assert result == DispatchResult(claimed=1, retried=1)
    delivery = runner_delivery(event)
    assert (delivery.status, delivery.attempts) == ("pending", 3)
    assert (delivery.last_status_code, delivery.last_error) == (500, "HTTP 500")
    assert delivery.next_attempt_at == NOW + timedelta(seconds=120 * seeded().uniform(0.9, 1.0))
    assert delivery.claim_token is None


@override_settings(PORTAL_OUTBOX_BASE_DELAY_SECONDS=30, PORTAL_OUTBOX_MAX_DELAY_SECONDS=600)
@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_stays_within_ten_percent_below_the_capped_formula(attempt):
    rng = random.Random(attempt)
    formula = timedelta(seconds=min(30 * 2 ** (attempt - 1), 600))
    delays = [retry_delay(attempt, rng=rng) for _ in range(200)]

    assert all(formula * 0.9 <= delay <= formula for delay in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("path", "after", "expected"),
    [
        ("/throttle", "120", timedelta(seconds=120)),
        ("/unavailable", "45", timedelta(seconds=45)),
        (
            "/throttle",
            format_datetime(NOW + timedelta(minutes=5), usegmt=True),
            timedelta(minutes=5),
        ),
        ("/throttle", "99999", timedelta(hours=1)),  # capped at MAX_DELAY
    ],
)
@override_settings(PORTAL_OUTBOX_MAX_DELAY_SECONDS=3600)
def test_429_and_503_honour_retry_after(receiver, runner_at, path, after, expected):
    runner_at(f"{path}?after={after}")
    event = emit()

    dispatch_due_deliveries(now=NOW, rng=seeded())

    delivery = runner_delivery(event)
    assert delivery.status == "pending"
    assert delivery.next_attempt_at == NOW + expected


def test_429_without_retry_after_uses_the_backoff(receiver, runner_at):
    runner_at("/throttle")
    event = emit()

    dispatch_due_deliveries(now=NOW, rng=seeded())

    assert runner_delivery(event).next_attempt_at == NOW + backoff(1)


@pytest.mark.parametrize("value", ["", "soon", "Mon, 99 Foo 2026"])
def test_unreadable_retry_after_is_ignored(value):
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_in_the_past_means_now():
    assert parse_retry_after("Wed, 01 Jan 2020 00:00:00 GMT", now=NOW) == timedelta(0)


def test_3xx_is_a_failure_and_redirects_are_not_followed(receiver, runner_at):
    runner_at("/redirect")
    event = emit()

    dispatch_due_deliveries(now=NOW, rng=seeded())

    delivery = runner_delivery(event)
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    assert [r.path for r in receiver.requests] == ["/redirect"]


def test_410_disables_the_endpoint_and_kills_its_deliveries(receiver):
    endpoint = WebhookEndpoint.objects.create(url=f"{receiver.url}/gone", secret=WHSEC)
    first, second = emit(), emit()

    result = dispatch_due_deliveries(now=NOW)

    assert result == DispatchResult(claimed=2, dead=2, disabled=1)
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert endpoint.disabled_reason.startswith("HTTP 410")
    assert len(receiver.requests) == 1  # the second delivery was not sent to a gone endpoint
    deliveries = OutboxDelivery.objects.filter(event__in=[first, second])
    assert sorted(deliveries.values_list("last_error", flat=True)) == [
        "HTTP 410",
        "endpoint disabled",
    ]
    assert set(deliveries.values_list("status", flat=True)) == {"failed"}


def test_410_from_the_runner_kills_the_delivery(receiver, runner_at):
    runner_at("/gone")
    event = emit()

    result = dispatch_due_deliveries(now=NOW)

    assert result == DispatchResult(claimed=1, dead=1)
    delivery = runner_delivery(event)
    assert (delivery.status, delivery.last_status_code) == ("failed", 410)


@override_settings(PORTAL_OUTBOX_READ_TIMEOUT_SECONDS=0.3)
def test_a_receiver_hanging_past_the_read_timeout_is_retried(receiver, runner_at):
    runner_at("/hang")
    event = emit()

    result = dispatch_due_deliveries(now=NOW, rng=seeded())

    assert result == DispatchResult(claimed=1, retried=1)
    delivery = runner_delivery(event)
    assert (delivery.status, delivery.last_error, delivery.last_status_code) == (
        "pending",
        "ReadTimeout",
        None,
    )
    assert delivery.next_attempt_at == NOW + backoff(1)


def test_a_dropped_connection_is_retried(receiver, runner_at):
    runner_at("/drop")
    event = emit()

    dispatch_due_deliveries(now=NOW, rng=seeded())

    delivery = runner_delivery(event)
    assert (delivery.status, delivery.last_error) == ("pending", "ConnectionError")
    assert delivery.next_attempt_at == NOW + backoff(1)


@override_settings(PORTAL_OUTBOX_MAX_ATTEMPTS=3)
def test_the_last_allowed_attempt_makes_the_delivery_dead(receiver, runner_at):
    runner_at("/error")
    event = emit()
    OutboxDelivery.objects.update(attempts=2)

    result = dispatch_due_deliveries(now=NOW)

    assert result == DispatchResult(claimed=1, dead=1)
    delivery = runner_delivery(event)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 500")


def test_deliveries_without_a_destination_are_not_sent(receiver, runner_at):
    runner_at("/ok")
    inactive = WebhookEndpoint.objects.create(url=f"{receiver.url}/ok", secret=WHSEC)
    deleted = WebhookEndpoint.objects.create(url=f"{receiver.url}/ok", secret=WHSEC)
    emit()
    WebhookEndpoint.objects.filter(pk=inactive.pk).update(is_active=False)
    deleted.delete()

    with override_settings(PORTAL_RUNNER_ENDPOINT=""):
        result = dispatch_due_deliveries(now=NOW)

    assert result == DispatchResult(claimed=3, dead=3)
    assert receiver.requests == []
    assert sorted(OutboxDelivery.objects.values_list("last_error", flat=True)) == [
        "endpoint deleted",
        "endpoint disabled",
        "runner endpoint not configured",
    ]


def test_deliveries_not_yet_due_are_left_alone(receiver, runner_at):
    runner_at("/ok")
    emit(now=NOW + timedelta(seconds=1))

    assert dispatch_due_deliveries(now=NOW) == DispatchResult()
    assert receiver.requests == []


def test_an_expired_claim_is_recovered(receiver, runner_at):
    runner_at("/ok")
    event = emit()
    claim_due_deliveries(now=NOW, limit=10)  # a dispatcher that died right after claiming

    assert dispatch_due_deliveries(now=NOW + claim_lease() - timedelta(seconds=1)).claimed == 0
    result = dispatch_due_deliveries(now=NOW + claim_lease())

    assert result == DispatchResult(claimed=1, delivered=1)
    delivery = runner_delivery(event)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert len(receiver.requests) == 1


def test_a_late_result_never_overwrites_a_newer_claim(runner_at):
    runner_at("/ok")
    event = emit()
    old_token, [old] = claim_due_deliveries(now=NOW, limit=10)
    new_token, _ = claim_due_deliveries(now=NOW + claim_lease(), limit=10)

    counts = record_outcomes(old_token, [Outcome(old, "delivered", status_code=200)], [], now=NOW)

    assert counts["stale"] == 1
    delivery = runner_delivery(event)
    assert (delivery.status, delivery.claim_token) == ("pending", new_token)


@override_settings(
    PORTAL_OUTBOX_CONNECT_TIMEOUT_SECONDS=0.2,
    PORTAL_OUTBOX_READ_TIMEOUT_SECONDS=0.2,
    PORTAL_OUTBOX_CLAIM_LEASE_SECONDS=0,
)
def test_deliveries_the_lease_cannot_cover_are_released_unsent(receiver, runner_at):
    runner_at("/hang")
    emit(), emit()

    result = dispatch_due_deliveries(now=NOW, rng=seeded())

    # The first claim sent one and handed one back; the next claim took that one.
    assert result == DispatchResult(claimed=3, retried=2, released=1)
    assert list(OutboxDelivery.objects.values_list("attempts", flat=True)) == [1, 1]


def test_secrets_never_reach_the_logs(receiver, runner_at, caplog):
    caplog.set_level(logging.DEBUG)
    endpoint_secret = "endpoint-secret-do-not-log"
    WebhookEndpoint.objects.create(url=f"{receiver.url}/error", secret=endpoint_secret)
    WebhookEndpoint.objects.create(url=f"{receiver.url}/drop", secret=endpoint_secret)
    runner_at("/ok")
    emit()

    dispatch_due_deliveries(now=NOW)

    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "event.dispatched" in logged
    assert "event.delivery_failed" in logged
    assert endpoint_secret not in logged
    assert WHSEC not in logged
    assert WHSEC.removeprefix("whsec_") not in logged


def test_replay_makes_dead_deliveries_pending_and_due(runner_at):
    runner_at("/ok")
    dead, alive = emit(), emit()
    OutboxDelivery.objects.filter(event=dead).update(status="failed", attempts=10, last_error="x")

    replayed = replay_dead_deliveries(deliveries=OutboxDelivery.objects.all(), now=NOW)

    assert replayed == 1
    delivery = runner_delivery(dead)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("pending", 0, NOW)
    assert runner_delivery(alive).attempts == 0


def test_retry_now_skips_deliveries_a_dispatcher_holds(runner_at):
    runner_at("/ok")
    waiting, held, done = emit(), emit(), emit()
    later = NOW + timedelta(hours=1)
    OutboxDelivery.objects.filter(event=waiting).update(next_attempt_at=later)
    OutboxDelivery.objects.filter(event=held).update(
        next_attempt_at=later, claim_token=uuid.uuid4()
    )
    OutboxDelivery.objects.filter(event=done).update(status="delivered", next_attempt_at=later)

    assert retry_now(deliveries=OutboxDelivery.objects.all(), now=NOW) == 1
    assert runner_delivery(waiting).next_attempt_at == NOW
    assert runner_delivery(held).next_attempt_at == later
