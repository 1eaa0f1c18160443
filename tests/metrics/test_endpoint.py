"""``GET /metrics``: served ahead of host checks, every SPEC §12 name, switched off by setting."""

import pytest
from django.db import DatabaseError
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from portal.metrics import gauges
from portal.models import CleanupRun

pytestmark = pytest.mark.django_db

SPEC_METRICS = {
    "portal_upload_sessions": "counter",
    "portal_upload_bytes": "counter",
    "portal_cleanup_items": "counter",
    "portal_cleanup_bytes_reclaimed": "counter",
    "portal_cleanup_last_success_timestamp_seconds": "gauge",
    "portal_cleanup_run_duration_seconds": "histogram",
    "portal_outbox_deliveries": "counter",
    "portal_outbox_pending": "gauge",
    "portal_outbox_dead": "gauge",
    "portal_outbox_oldest_pending_age_seconds": "gauge",
    "portal_retention_overdue_files": "gauge",
}


@pytest.fixture
def cleanup_history():
    now = timezone.now()
    CleanupRun.objects.create(trigger="beat", status="success", started_at=now, finished_at=now)


def families(response) -> dict:
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


@override_settings(ALLOWED_HOSTS=["portal.example.com"], SECURE_SSL_REDIRECT=True)
def test_metrics_answer_a_scrape_of_the_pod_ip_over_plain_http(client):
    response = client.get("/metrics", headers={"host": "10.1.2.3:8000"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"].startswith("max-age=0")


def test_every_spec_metric_is_exposed_with_its_type(client, cleanup_history):
    found = families(client.get("/metrics"))

    assert {name: found[name].type for name in SPEC_METRICS if name in found} == SPEC_METRICS


@override_settings(PORTAL_METRICS_ENABLED=False, ALLOWED_HOSTS=["portal.example.com"])
def test_metrics_switched_off_answer_404_on_both_routes(client):
    through_middleware = client.get("/metrics", headers={"host": "10.1.2.3"})
    through_urls = client.get("/metrics", headers={"host": "portal.example.com"})

    for response in (through_middleware, through_urls):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_only_safe_methods_are_answered(client):
    assert client.post("/metrics").status_code == 405
    assert client.head("/metrics").content == b""


def test_counters_are_still_served_when_the_database_fails(client, monkeypatch):
    def broken(now):
        raise DatabaseError("connection refused")
        yield

    monkeypatch.setattr(gauges, "SOURCES", (broken, gauges.cleanup_gauges))

    found = families(client.get("/metrics"))

    assert "portal_upload_bytes" in found
    assert "portal_outbox_pending" not in found
    assert "portal_cleanup_interval_seconds" in found
