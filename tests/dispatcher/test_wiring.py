"""The thin callers around the dispatcher: signal receiver, task, command, admin."""

import json
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from boot.celery import app as celery_app
from portal.models import OutboxDelivery, WebhookEndpoint
from portal.tasks import dispatch_outbox_task
from tests.factories import emit_file_stored


@pytest.fixture
def eager_celery():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.mark.django_db(transaction=True)
def test_an_emitted_event_is_dispatched_once_its_transaction_commits(receiver, eager_celery):
    with override_settings(PORTAL_RUNNER_ENDPOINT=f"{receiver.url}/ok"), transaction.atomic():
        event = emit_file_stored()
        assert receiver.requests == []  # nothing leaves before the commit

    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(event.pk)]
    assert OutboxDelivery.objects.get().status == "delivered"


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_leaves_the_delivery_for_the_sweep(receiver):
    with (
        override_settings(PORTAL_RUNNER_ENDPOINT=f"{receiver.url}/ok"),
        mock.patch.object(dispatch_outbox_task, "delay", side_effect=OperationalError("down")),
        transaction.atomic(),
    ):
        emit_file_stored()

    assert OutboxDelivery.objects.get().status == "pending"


@pytest.mark.django_db
def test_the_task_returns_the_counts(receiver):
    with override_settings(PORTAL_RUNNER_ENDPOINT=f"{receiver.url}/ok"):
        emit_file_stored()
        assert dispatch_outbox_task.apply().get()["delivered"] == 1


@pytest.mark.django_db
def test_the_command_prints_the_counts(receiver):
    with override_settings(PORTAL_RUNNER_ENDPOINT=f"{receiver.url}/error"):
        emit_file_stored()
        out = StringIO()
        call_command("dispatch_outbox", "--json", stdout=out)
        call_command("dispatch_outbox", stdout=out)

    first, second = out.getvalue().splitlines()
    assert json.loads(first) | {"claimed": 1, "retried": 1} == json.loads(first)
    assert second.startswith("claimed 0, delivered 0")


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", "pw"))
    return client


def run_action(client, model, action, pks):
    url = reverse(f"admin:portal_{model}_changelist")
    return client.post(
        url, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True
    )


@pytest.mark.django_db
def test_admin_replays_dead_deliveries_of_selected_events(staff_client):
    with override_settings(PORTAL_RUNNER_ENDPOINT="http://runner.invalid/"):
        event = emit_file_stored()
    OutboxDelivery.objects.update(status="failed", attempts=10)

    response = run_action(staff_client, "outboxevent", "replay_dead", [event.pk])

    assert "1 dead delivery replayed." in response.content.decode()
    delivery = OutboxDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 0)


@pytest.mark.django_db
def test_admin_retries_selected_pending_deliveries_now(staff_client):
    with override_settings(PORTAL_RUNNER_ENDPOINT="http://runner.invalid/"):
        emit_file_stored(), emit_file_stored()
    later = timezone.now() + timedelta(hours=1)
    OutboxDelivery.objects.update(next_attempt_at=later)

    pks = OutboxDelivery.objects.values_list("pk", flat=True)
    response = run_action(staff_client, "outboxdelivery", "retry_pending_now", pks)

    assert "2 pending deliveries due now." in response.content.decode()
    assert not OutboxDelivery.objects.filter(next_attempt_at=later).exists()


@pytest.mark.django_db
def test_endpoint_form_never_shows_the_secret_and_keeps_it_when_left_blank(staff_client):
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example/x", secret="s3cret-abcd")
    url = reverse("admin:portal_webhookendpoint_change", args=[endpoint.pk])

    page = staff_client.get(url).content.decode()
    assert "s3cret-abcd" not in page
    assert "…abcd" in page

    staff_client.post(
        url, {"name": "renamed", "url": endpoint.url, "secret": "", "event_types": "[]"}
    )
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.secret) == ("renamed", "s3cret-abcd")
