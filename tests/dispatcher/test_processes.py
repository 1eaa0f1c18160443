"""Dispatcher processes against one PostgreSQL database: no double sends, no lost claims."""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from portal.models import OutboxDelivery, OutboxEvent
from portal.services.dispatcher import DispatchResult, dispatch_due_deliveries

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PROJECT_DIR = Path(__file__).resolve().parents[2]
SECRET = "runner-secret"


def database_url():
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_dispatcher(runner_url):
    """``manage.py dispatch_outbox --json`` in its own process, on the test database."""
    env = {
        **os.environ,
        "DJANGO_CONFIGURATION": "Test",
        "DATABASE_URL": database_url(),
        "PORTAL_RUNNER_ENDPOINT": runner_url,
        "PORTAL_RUNNER_AUTH_SECRET": SECRET,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "dispatch_outbox", "--json"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def make_due_runner_deliveries(count):
    now = timezone.now()
    events = OutboxEvent.objects.bulk_create(
        OutboxEvent(
            event_type="file.stored",
            payload={"event_type": "file.stored", "n": n},
            aggregate_type="file",
            aggregate_id=str(n),
            idempotency_key=str(uuid.uuid4()),
        )
        for n in range(count)
    )
    OutboxDelivery.objects.bulk_create(
        OutboxDelivery(event=event, destination=OutboxDelivery.RUNNER, next_attempt_at=now)
        for event in events
    )
    return {str(event.pk) for event in events}


def test_four_dispatcher_processes_deliver_each_delivery_exactly_once(receiver):
    event_ids = make_due_runner_deliveries(2000)

    workers = [start_dispatcher(f"{receiver.url}/ok") for _ in range(4)]
    outputs = [worker.communicate(timeout=240) for worker in workers]

    assert [worker.returncode for worker in workers] == [0] * 4, outputs
    results = [json.loads(stdout) for stdout, _ in outputs]
    assert sum(r["delivered"] for r in results) == 2000
    assert sum(r["stale"] + r["retried"] + r["dead"] for r in results) == 0
    assert set(receiver.webhook_ids) == event_ids
    assert set(receiver.webhook_ids.values()) == {1}
    assert OutboxDelivery.objects.exclude(status="delivered").count() == 0


def test_a_dispatcher_killed_mid_delivery_leaves_it_to_be_sent_after_the_lease(receiver):
    [event_id] = make_due_runner_deliveries(1)
    dispatcher = start_dispatcher(f"{receiver.url}/hang")
    assert receiver.arrived.wait(60), "the dispatcher never sent the delivery"

    dispatcher.send_signal(signal.SIGKILL)  # between claim and result
    dispatcher.wait(timeout=30)
    receiver.release.set()

    delivery = OutboxDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.claim_token is not None
    with override_settings(
        PORTAL_RUNNER_ENDPOINT=f"{receiver.url}/ok", PORTAL_RUNNER_AUTH_SECRET=SECRET
    ):
        # While the dead dispatcher's lease lasts, nobody takes the delivery ...
        assert dispatch_due_deliveries(now=timezone.now()).claimed == 0
        # ... once it has run out, the next pass sends it.
        result = dispatch_due_deliveries(now=delivery.next_attempt_at)

    assert result == DispatchResult(claimed=1, delivered=1)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert [r.path for r in receiver.requests] == ["/hang", "/ok"]
    assert receiver.webhook_ids == {event_id: 2}
