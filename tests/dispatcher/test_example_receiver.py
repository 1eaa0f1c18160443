"""examples/webhook_receiver.py, run as a separate process, verifies real deliveries."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from portal.models import OutboxDelivery
from portal.services.dispatcher import dispatch_due_deliveries
from tests.factories import emit_file_stored

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"
SECRET = "whsec_" + base64.b64encode(b"example-receiver-key").decode()


@pytest.fixture
def example_receiver():
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"],
        env={**os.environ, "WEBHOOK_SECRET": SECRET},
        stdout=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().split()[-1]
    yield url, process
    process.kill()
    process.wait()


@pytest.mark.django_db
def test_the_example_receiver_accepts_signed_deliveries_and_refuses_forged_ones(
    example_receiver,
):
    url, process = example_receiver
    with override_settings(PORTAL_RUNNER_ENDPOINT=url, PORTAL_RUNNER_AUTH_SECRET=SECRET):
        good = emit_file_stored()
        assert dispatch_due_deliveries().delivered == 1
    with override_settings(PORTAL_RUNNER_ENDPOINT=url, PORTAL_RUNNER_AUTH_SECRET="whsec_Zm9yZ2Vk"):
        forged = emit_file_stored()
        assert dispatch_due_deliveries().retried == 1

    assert OutboxDelivery.objects.get(event=good).status == "delivered"
    assert OutboxDelivery.objects.get(event=forged).last_status_code == 401
    assert process.stdout.readline().split()[:2] == ["verified", str(good.pk)]
    assert process.stdout.readline().split() == ["rejected", str(forged.pk)]
