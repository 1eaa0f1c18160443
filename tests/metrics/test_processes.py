"""Acceptance (SPEC §12): real processes, and the counters equal the real totals on every scrape.

gunicorn runs the production server config with 2 workers; a real Celery worker
(prefork, 2 pool processes, Redis broker) delivers webhooks and runs cleanup; a
one-off ``manage.py run_cleanup`` writes into the web server's directory, as a
``kubectl exec`` in the web pod would. Several client connections upload. Then
every scrape of the web server, whichever gunicorn worker answers it, shows the
same counters, and the web server's and the Celery worker's counters added up
(as Prometheus' ``sum()`` adds up targets) equal what the database says happened.
"""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import requests
from django.db.models import Sum
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from portal.models import CleanupRun, OutboxDelivery, UploadSession, WebhookEndpoint
from portal.services.tokens import create_api_token
from tests.cleanup.helpers import database_url
from tests.environment import REDIS_URL
from tests.factories import make_user

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
PROJECT = Path(__file__).resolve().parents[2]
CHUNK = 8
FILE = b"0123456789abcdefghijk"  # 21 bytes: parts of 8, 8 and 5
CLIENTS = 4
FILES_PER_CLIENT = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, *, what, logs, timeout=90):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.3)


class Processes:
    def __init__(self, tmp_path, env):
        self.tmp_path = tmp_path
        self.env = env
        self.running = []

    def start(self, name, args, *, extra_env=None, pass_fds=()):
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        process = subprocess.Popen(
            args,
            cwd=PROJECT,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
        )
        self.running.append((process, log))
        return process

    def run(self, name, args, *, extra_env=None):
        result = subprocess.run(
            args,
            cwd=PROJECT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}\n{result.stderr}"
        return result

    @property
    def logs(self):
        return sorted(self.tmp_path.glob("*.log"))

    def stop_all(self):
        for process, log in reversed(self.running):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@pytest.fixture
def stack(tmp_path, receiver):
    redis.Redis.from_url(REDIS_URL).flushdb()  # no task left from an earlier run
    storage_root = tmp_path / "storage"
    storage_root.mkdir()
    env = {
        **os.environ,
        "DJANGO_CONFIGURATION": "Test",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "PORTAL_STORAGE_BACKEND": "filesystem",
        "PORTAL_STORAGE_ROOT": str(storage_root),
        "PORTAL_CHUNK_SIZE": str(CHUNK),
        "PORTAL_CHUNK_SIZE_MIN": "4",
        "PORTAL_CHUNK_SIZE_MAX": "64",
        "PORTAL_MAX_FILE_SIZE": "1024",
        "PORTAL_CLEANUP_GRACE_MINUTES": "0",  # finished sessions' parts go at once
        "PORTAL_RUNNER_ENDPOINT": f"{receiver.url}/ok",
        "PORTAL_RUNNER_AUTH_SECRET": "runner-secret",
        "LOG_LEVEL": "INFO",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    processes = Processes(tmp_path, env)
    web_dir, worker_dir = tmp_path / "web-metrics", tmp_path / "worker-metrics"
    web_dir.mkdir()
    worker_dir.mkdir()  # the worker's pod mounts one; the library needs it at import
    (web_dir / "counter_1.db").write_bytes(b"stale")  # a previous run's file: wiped at start
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    web_port = listener.getsockname()[1]
    worker_port = free_port()
    with listener:
        processes.start(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "boot/gunicorn.conf.py",
                f"--bind=fd://{listener.fileno()}",
                "--no-control-socket",  # its default path is shared by every gunicorn
                "--access-logfile",
                str(tmp_path / "access.txt"),
                "--access-logformat",
                "%(p)s %(U)s",
            ],
            extra_env={"PROMETHEUS_MULTIPROC_DIR": str(web_dir)},  # the config runs 2 workers
            pass_fds=(listener.fileno(),),
        )
    processes.start(
        "celery",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "boot",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--pidfile=",
            "--loglevel=INFO",
        ],
        extra_env={
            "PROMETHEUS_MULTIPROC_DIR": str(worker_dir),
            "PORTAL_METRICS_WORKER_PORT": str(worker_port),
        },
    )
    stack = type("Stack", (), {})()
    stack.web = f"http://127.0.0.1:{web_port}"
    stack.worker = f"http://127.0.0.1:{worker_port}"
    stack.processes, stack.web_dir, stack.tmp_path = processes, web_dir, tmp_path
    try:
        wait_for(lambda: answers(f"{stack.web}/health"), what="gunicorn", logs=processes.logs)
        wait_for(lambda: answers(f"{stack.worker}/"), what="the worker's port", logs=processes.logs)
        yield stack
    finally:
        processes.stop_all()


def answers(url) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:  # refused, or accepted by a server still booting
        return False


def upload(web, token, index, *, finish="finalize"):
    """One file over its own connection: create, parts (one sent twice), then ``finish``."""
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        key = f"file-{index}"
        body = {
            "original_filename": f"{key}.bin",
            "content_type": "application/octet-stream",
            "total_size_bytes": len(FILE),
            "chunk_size_bytes": CHUNK,
            "idempotency_key": key,
        }
        created = http.post(f"{web}/uploads/sessions", json=body, timeout=30)
        assert created.status_code == 201, created.text
        assert http.post(f"{web}/uploads/sessions", json=body, timeout=30).status_code == 200
        session = f"{web}/uploads/sessions/{created.json()['session_id']}"
        for number, start in ((1, 0), (2, 8), (3, 16), (1, 0)):  # part 1 again: not counted
            part = http.put(f"{session}/parts/{number}", data=FILE[start : start + CHUNK])
            assert part.status_code in (200, 201), part.text
        if finish == "finalize":
            done = http.post(
                f"{session}/finalize", json={"sha256": hashlib.sha256(FILE).hexdigest()}
            )
            assert done.status_code == 200, done.text
        elif finish == "mismatch":
            assert http.post(f"{session}/finalize", json={"sha256": "0" * 64}).status_code == 422
        elif finish == "abort":
            assert http.delete(session).status_code == 204
        return created.json()["session_id"]


def scrape(url) -> Counter:
    """Counter samples of one scrape (a fresh connection each time), by name and labels."""
    text = requests.get(url, headers={"Connection": "close"}, timeout=10).text
    return Counter(
        {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if family.type in ("counter", "histogram") and family.name.startswith("portal_")
        }
    )


def test_every_counter_equals_the_real_totals_on_every_scrape(stack, receiver):
    token = create_api_token(user=make_user()).plaintext
    WebhookEndpoint.objects.create(url=f"{receiver.url}/error", secret="endpoint-secret")
    finishes = ["finalize"] * (CLIENTS * FILES_PER_CLIENT) + ["mismatch", "abort", "leave"]
    with ThreadPoolExecutor(CLIENTS) as clients:
        sessions = list(
            clients.map(
                lambda job: upload(stack.web, token, job[0], finish=job[1]), enumerate(finishes)
            )
        )
    for _ in range(3):
        assert requests.get(f"{stack.web}/ready", timeout=5).status_code == 200
    stored = CLIENTS * FILES_PER_CLIENT
    # Every file.stored went to the runner (200) and to the endpoint (500, retried later).
    wait_for(
        lambda: (
            OutboxDelivery.objects.filter(status="delivered").count() == stored
            and OutboxDelivery.objects.filter(attempts=1, status="pending").count() == stored
        ),
        what="the worker's deliveries",
        logs=stack.processes.logs,
    )
    # The abandoned session's client went away a day ago; cleanup runs in the worker,
    # then once more from a one-off command in the web server's directory.
    UploadSession.objects.filter(pk=sessions[-1]).update(
        last_activity_at=timezone.now() - timedelta(days=2)
    )
    celery_call = [sys.executable, "-m", "celery", "-A", "boot", "call"]
    stack.processes.run("call cleanup", [*celery_call, "portal.tasks.portal_cleanup_task"])
    wait_for(
        lambda: CleanupRun.objects.filter(status="success").exists(),
        what="the worker's cleanup run",
        logs=stack.processes.logs,
    )
    stack.processes.run(
        "run_cleanup",
        [sys.executable, "manage.py", "run_cleanup"],
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(stack.web_dir)},
    )
    stack.processes.run("call dispatch", [*celery_call, "portal.tasks.dispatch_outbox_task"])

    truth = real_totals()
    web_scrapes = []
    with ThreadPoolExecutor(4) as scrapers:  # concurrent scrapes reach both gunicorn workers
        for _ in range(5):
            web_scrapes += scrapers.map(scrape, [f"{stack.web}/metrics"] * 8)
    worker = scrape(f"{stack.worker}/metrics")

    answered_by = {
        line.split()[0]
        for line in (stack.tmp_path / "access.txt").read_text().splitlines()
        if line.endswith(" /metrics")
    }
    assert len(answered_by) == 2, "both gunicorn workers answered scrapes"
    assert all(s == web_scrapes[0] for s in web_scrapes), "every web scrape shows the same counts"
    total = web_scrapes[0] + worker
    for key, expected in truth.items():
        assert total[key] == expected, key
    # What each server counted itself: uploads in the web server, deliveries in the worker.
    assert worker[("portal_upload_bytes_total", ())] == 0
    assert web_scrapes[0][("portal_outbox_deliveries_total", (("outcome", "delivered"),))] == 0
    assert not (stack.web_dir / "counter_1.db").exists()


def real_totals() -> dict:
    """What the database says happened, under the names and labels of the counters."""
    sessions = UploadSession.objects
    failed = sessions.filter(status="failed")
    deliveries = OutboxDelivery.objects
    runs = CleanupRun.objects.exclude(status="skipped")
    items = Counter()
    for counts in runs.filter(dry_run=False).values_list("counts", flat=True):
        for step, numbers in counts.items():
            if step != "total":
                for name, value in numbers.items():
                    if name != "bytes_reclaimed" and value:
                        items[
                            ("portal_cleanup_items_total", (("result", name), ("step", step)))
                        ] += value
    assert items, "cleanup did something to count"
    assert failed.filter(failure_reason="expired").count() == 1
    return {
        ("portal_upload_sessions_opened_total", ()): sessions.count(),
        ("portal_upload_bytes_total", ()): sessions.aggregate(n=Sum("bytes_received"))["n"],
        **{
            ("portal_upload_sessions_total", (("outcome", outcome),)): count
            for outcome, count in {
                "complete": sessions.filter(status="complete").count(),
                "aborted": sessions.filter(status="aborted").count(),
                "expired": failed.filter(failure_reason="expired").count(),
                "checksum_mismatch": failed.filter(failure_reason="checksum_mismatch").count(),
            }.items()
        },
        ("portal_outbox_deliveries_total", (("outcome", "delivered"),)): deliveries.filter(
            status="delivered"
        ).count(),
        ("portal_outbox_deliveries_total", (("outcome", "retried"),)): deliveries.filter(
            status="pending"
        ).aggregate(n=Sum("attempts"))["n"],
        ("portal_outbox_deliveries_total", (("outcome", "dead"),)): deliveries.dead().count(),
        ("portal_cleanup_run_duration_seconds_count", ()): runs.count(),
        ("portal_readiness_checks_total", (("check", "database"), ("result", "ok"))): 3,
        ("portal_readiness_checks_total", (("check", "storage"), ("result", "ok"))): 3,
        **items,
    }
