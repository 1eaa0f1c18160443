"""/health and /ready in-process: routing ahead of host checks, and storage failures."""

import json
import logging
import shutil
import time
from concurrent.futures import wait

import boto3
import pytest
from django.conf import settings
from django.test import override_settings

from portal.services.health import check_readiness, start_readiness_checks
from portal.storage.s3 import S3Storage
from tests.conftest import S3_CREDENTIALS
from tests.health.conftest import READY_ANSWER_LIMIT_SECONDS
from tests.logs import event_of

POD_IP_HOST = "10.1.2.3:8000"


def answer(response):
    return response.status_code, json.loads(response.content)


def timed_get(client, path, **extra):
    started = time.monotonic()
    response = client.get(path, **extra)
    return response, time.monotonic() - started


def s3_settings_for(endpoint, bucket="portal-ready"):
    return {
        "PORTAL_STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        **S3_CREDENTIALS,
    }


def assert_storage_unavailable(response, seconds, *, secrets=()):
    status, body = answer(response)
    assert status == 503
    assert seconds < READY_ANSWER_LIMIT_SECONDS
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    storage = body["checks"]["storage"]
    assert storage["ok"] is False
    assert storage["error"] in ("timeout", "unavailable")
    assert set(storage) == {"ok", "ms", "error"}
    text = response.content.decode()
    for secret in secrets:
        assert str(secret) not in text


# -- /health ------------------------------------------------------------------------


def test_health_answers_without_touching_database_or_storage(client, tmp_path):
    # No django_db mark: any database access would raise. The storage root is missing.
    with override_settings(PORTAL_STORAGE_ROOT=str(tmp_path / "missing")):
        get_response = client.get("/health")
        head_response = client.head("/health")

    assert answer(get_response) == (200, {"status": "ok"})
    assert head_response.status_code == 200
    assert head_response.content == b""
    assert "no-store" in get_response["Cache-Control"]


# -- /ready, healthy ----------------------------------------------------------------


@pytest.mark.django_db
def test_ready_is_200_when_database_and_storage_answer(client, fs_storage):
    response = client.get("/ready")

    status, body = answer(response)
    assert status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "storage"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert set(check) == {"ok", "ms"}
    assert client.head("/ready").status_code == 200


@pytest.mark.django_db
def test_ready_is_200_on_s3_when_the_bucket_answers(client, s3_storage):
    # As each production worker does when it starts: the first check's client setup
    # (seconds under CI load) is not the bucket's answer.
    wait(start_readiness_checks().values())

    status, body = answer(client.get("/ready"))

    assert status == 200
    assert body["checks"]["storage"]["ok"] is True


@pytest.mark.django_db
def test_started_checks_check_both_dependencies_and_say_so(s3_storage, caplog):
    caplog.set_level(logging.INFO)

    started = start_readiness_checks()

    assert sorted(started) == ["database", "storage"]
    assert [future.result(timeout=10)[0] for future in started.values()] == [True, True]
    logged = [event_of(record) for record in caplog.records]
    assert [e["checks"] for e in logged if e["event"] == "ready.checks_started"] == [
        ["database", "storage"]
    ]


# -- /ready, filesystem failures ----------------------------------------------------


@pytest.mark.django_db
def test_ready_is_503_when_the_storage_root_is_missing(client, fs_storage, storage_root):
    shutil.rmtree(storage_root)

    response, seconds = timed_get(client, "/ready")

    assert_storage_unavailable(response, seconds, secrets=[storage_root, "exist"])


@pytest.mark.django_db
def test_ready_is_503_when_a_regular_file_stands_in_for_the_root(client, fs_storage, storage_root):
    shutil.rmtree(storage_root)
    storage_root.write_bytes(b"not a directory")

    response, seconds = timed_get(client, "/ready")

    assert_storage_unavailable(response, seconds, secrets=[storage_root])


@pytest.mark.django_db
def test_ready_is_503_when_the_storage_root_is_read_only(client, read_only_root):
    with override_settings(
        PORTAL_STORAGE_BACKEND="filesystem", PORTAL_STORAGE_ROOT=str(read_only_root)
    ):
        response, seconds = timed_get(client, "/ready")

    assert_storage_unavailable(response, seconds, secrets=[read_only_root, "writable"])


# -- /ready, S3 failures ------------------------------------------------------------


@pytest.mark.django_db
def test_ready_is_503_within_budget_when_the_s3_server_stops(client, stoppable_s3_endpoint):
    server, endpoint = stoppable_s3_endpoint
    s3 = s3_settings_for(endpoint)
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=s3["AWS_S3_REGION_NAME"],
        aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=s3["AWS_STORAGE_BUCKET_NAME"])
    with override_settings(**s3):
        assert client.get("/ready").status_code == 200
        server.stop()

        response, seconds = timed_get(client, "/ready")

    assert_storage_unavailable(
        response, seconds, secrets=[endpoint, "127.0.0.1", "testing", "portal-ready"]
    )


@pytest.mark.django_db
def test_ready_is_503_within_budget_when_s3_accepts_and_never_answers(client, silent_server):
    with override_settings(**s3_settings_for(silent_server.url)):
        response, seconds = timed_get(client, "/ready")

    assert_storage_unavailable(response, seconds, secrets=[silent_server.url, "127.0.0.1"])


@pytest.mark.django_db
def test_a_check_still_running_is_not_started_again(silent_server):
    with override_settings(**s3_settings_for(silent_server.url)):
        # Its read timeout outlives the probes' budget: the check hangs past each probe.
        storage = S3Storage(temp_prefix="tmp/", final_prefix="files/", check_read_timeout=1)
        first = check_readiness(storage=storage, timeout=0.1)
        wait_for(lambda: len(silent_server.accepted) == 1)
        second = check_readiness(storage=storage, timeout=0.1)
        connections_while_hanging = len(silent_server.accepted)
        patient = check_readiness(storage=storage, timeout=10)
        connections_of_first_check = len(silent_server.accepted)
        check_readiness(storage=storage, timeout=0.1)
        wait_for(lambda: len(silent_server.accepted) > connections_of_first_check)

    assert first.storage.error == second.storage.error == "timeout"
    assert connections_while_hanging == 1
    # The patient probe waited on the first check until it gave up; only then a new one started.
    assert patient.storage.error == "unavailable"


def wait_for(condition, seconds=5):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- routing ahead of host validation and the HTTPS redirect ------------------------


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=["portal.example.com"], SECURE_SSL_REDIRECT=True)
def test_probes_answer_the_pod_ip_over_plain_http(client, fs_storage):
    health = client.get("/health", HTTP_HOST=POD_IP_HOST)
    ready = client.get("/ready", HTTP_HOST=POD_IP_HOST)
    head = client.head("/ready", HTTP_HOST=POD_IP_HOST)

    assert health.status_code == 200
    assert ready.status_code == 200
    assert head.status_code == 200
    # The same host on any other page is refused, and an allowed one redirected to HTTPS.
    assert client.get("/admin/login/", HTTP_HOST=POD_IP_HOST).status_code == 400
    redirect = client.get("/admin/login/", HTTP_HOST="portal.example.com")
    assert redirect.status_code == 301
    assert redirect["Location"].startswith("https://portal.example.com/")


@pytest.mark.django_db
def test_portal_urls_serve_the_probes_for_hosts_without_the_middleware(client, fs_storage):
    middleware = [m for m in settings.MIDDLEWARE if m != "portal.middleware.ProbeMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        assert answer(client.get("/health")) == (200, {"status": "ok"})
        assert client.get("/ready").status_code == 200
        assert client.post("/health").status_code == 405
