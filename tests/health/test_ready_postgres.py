"""/ready against a PostgreSQL cluster the test stops, freezes and restarts.

The portal runs under gunicorn in the Production configuration, as in a pod:
persistent database connections, ALLOWED_HOSTS restricted, HTTPS redirect on,
JSON logs. The server is never restarted between scenarios.
"""

import json
import time

import pytest

from tests.health.conftest import READY_ANSWER_LIMIT_SECONDS, READY_BUDGET_SECONDS, PortalServer

pytestmark = pytest.mark.slow

PASSWORD = "pg-password-never-shown"
SECRET_KEY = "secret-key-never-shown-0123456789abcdef"
POD_IP_HOST = "10.1.2.3:8000"


@pytest.fixture(scope="module")
def portal(postgres_cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("portal")
    (base / "storage").mkdir()
    server = PortalServer(
        env={
            "DJANGO_SETTINGS_MODULE": "boot.settings",
            "DJANGO_CONFIGURATION": "Production",
            "SECRET_KEY": SECRET_KEY,
            "ALLOWED_HOSTS": "portal.example.com",
            "DATABASE_URL": postgres_cluster.url(password=PASSWORD),
            "PORTAL_STORAGE_BACKEND": "filesystem",
            "PORTAL_STORAGE_ROOT": str(base / "storage"),
            "PORTAL_READY_TIMEOUT_SECONDS": str(READY_BUDGET_SECONDS),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        },
        log_path=base / "gunicorn.log",
    )
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def cluster_back_up(postgres_cluster):
    """Whatever a scenario did to the cluster, the next one finds it running."""
    yield
    if postgres_cluster.running:
        postgres_cluster.thaw()
    else:
        postgres_cluster.start()


def ready_body(answer):
    return json.loads(answer.body)


def wait_until_ready(portal, seconds=15):
    deadline = time.monotonic() + seconds
    while (answer := portal.request("/ready")).status != 200:
        assert time.monotonic() < deadline, f"/ready still {answer.status}: {answer.body!r}"
        time.sleep(0.1)
    return answer


def assert_reveals_nothing(answer, postgres_cluster):
    text = answer.body.decode()
    for secret in (PASSWORD, SECRET_KEY, "127.0.0.1", str(postgres_cluster.port), "postgres"):
        assert secret not in text
    body = ready_body(answer)
    assert set(body) == {"status", "checks"}
    for check in body["checks"].values():
        assert set(check) <= {"ok", "ms", "error"}


def test_ready_is_200_while_postgres_and_storage_answer(portal):
    answer = portal.request("/ready")

    assert answer.status == 200
    body = ready_body(answer)
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["storage"]["ok"] is True


def test_stopped_cluster_is_503_within_budget_then_200_without_restarting(portal, postgres_cluster):
    assert portal.request("/ready").status == 200
    workers = portal.worker_pids()
    postgres_cluster.stop()

    answer = portal.request("/ready")

    assert answer.status == 503
    assert answer.seconds < READY_ANSWER_LIMIT_SECONDS
    checks = ready_body(answer)["checks"]
    assert checks["database"] == {
        "ok": False,
        "ms": checks["database"]["ms"],
        "error": "unavailable",
    }
    assert checks["storage"]["ok"] is True
    assert_reveals_nothing(answer, postgres_cluster)

    postgres_cluster.start()
    wait_until_ready(portal)
    assert portal.worker_pids() == workers


def test_frozen_cluster_is_503_within_budget_and_so_is_the_next_probe(portal, postgres_cluster):
    assert portal.request("/ready").status == 200  # a persistent connection is open
    workers = portal.worker_pids()
    postgres_cluster.freeze()

    first = portal.request("/ready")
    second = portal.request("/ready")
    liveness = portal.request("/health")

    for answer in (first, second):
        assert answer.status == 503
        assert answer.seconds < READY_ANSWER_LIMIT_SECONDS
        assert ready_body(answer)["checks"]["database"]["error"] == "timeout"
        assert_reveals_nothing(answer, postgres_cluster)
    assert liveness.status == 200

    postgres_cluster.thaw()
    wait_until_ready(portal)
    assert portal.worker_pids() == workers


def test_a_restart_between_probes_replaces_the_stale_connection(portal, postgres_cluster):
    assert portal.request("/ready").status == 200  # a persistent connection is open
    postgres_cluster.restart()

    assert portal.request("/ready").status == 200


def test_probes_answer_the_pod_ip_over_plain_http(portal):
    health = portal.request("/health", host=POD_IP_HOST)
    ready = portal.request("/ready", host=POD_IP_HOST)
    head = portal.request("/ready", method="HEAD", host=POD_IP_HOST)

    assert (health.status, json.loads(health.body)) == (200, {"status": "ok"})
    assert ready.status == 200
    assert (head.status, head.body) == (200, b"")
    # Every other page refuses that host, and redirects an allowed one to HTTPS.
    assert portal.request("/admin/login/", host=POD_IP_HOST).status == 400
    redirect = portal.request("/admin/login/", host="portal.example.com")
    assert redirect.status == 301
    assert redirect.headers["Location"].startswith("https://portal.example.com/")
