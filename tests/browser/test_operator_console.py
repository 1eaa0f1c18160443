"""Acceptance of the operator console (issue 17): the admin driven in headless Chromium.

Everything is real: the portal served over HTTP by ``runserver`` on the test
database, a Celery worker taking the admin's queued runs from Redis, Debian's
``chromium`` driven by playwright-core (``npm ci`` in this folder; ``.ci/run``
does it). Screenshots of every page go to ``var/screenshots/`` (CI artifacts).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.utils import timezone

from portal.models import CleanupRun, UploadFile, UploadSession
from portal.services.cleanup import STEPS
from portal.services.tokens import create_api_token
from tests.cleanup.helpers import MANAGE_PY, database_url
from tests.environment import REDIS_URL, require
from tests.factories import make_session, make_user

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "var" / "screenshots"
CELERY = ROOT / ".venv" / "bin" / "celery"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "console-test-password"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(args, *, env, log_path):
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    process.log = log
    return process


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.log.close()


def wait_for_port(port, *, process, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"server did not start; log:\n{Path(log_path).read_text()[-4000:]}")


def seed_history(now):
    """Thirty days of beat runs, so the charts have something to draw."""
    runs = []
    for day in range(1, 30):
        for hour in (3, 15):
            started = now - timedelta(days=day, hours=hour)
            deleted, failed = (day * 37) % 400, day % 7 == 0
            runs.append(
                CleanupRun(
                    trigger="beat",
                    status="partial" if failed else "success",
                    started_at=started,
                    finished_at=started + timedelta(milliseconds=200 + day * 90),
                    counts={
                        "orphan_temp_parts": {
                            "deleted": deleted,
                            "failed": int(failed),
                            "foreign": 0,
                            "bytes_reclaimed": deleted * 8 * 1024**2,
                        },
                        "total": {
                            "expired": day % 3,
                            "deleted": deleted,
                            "failed": int(failed),
                            "bytes_reclaimed": deleted * 8 * 1024**2,
                        },
                    },
                )
            )
    CleanupRun.objects.bulk_create(runs)


@pytest.fixture
def environment(tmp_path, storage_root):
    return {
        **os.environ,
        "DJANGO_CONFIGURATION": "Test",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "PORTAL_STORAGE_BACKEND": "filesystem",
        "PORTAL_STORAGE_ROOT": str(storage_root),
        "PORTAL_CLEANUP_GRACE_MINUTES": "30",
        "LOG_LEVEL": "INFO",
    }


@pytest.mark.django_db(transaction=True)
def test_operator_drives_the_console_in_chromium(tmp_path, environment, fs_storage):
    require(Path(CHROMIUM).exists(), "needs Debian's chromium: apt-get install -y chromium")
    require(shutil.which("node") is not None, "needs node")
    require((HERE / "node_modules" / "playwright-core").is_dir(), "needs `npm ci` in tests/browser")
    redis.Redis.from_url(REDIS_URL).flushdb()  # no task left over from an earlier run
    user = make_user("operator", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    create_api_token(user=user, name="ingest runner")
    now = timezone.now()
    seed_history(now)
    # Work for the live run, and parts that wait out the grace period; files in the
    # states the services leave them in (an abort marks its file failed).
    make_session(
        status=UploadSession.Status.INIT, last_activity_at=now - timedelta(days=2), parts=1
    )
    done = make_session(
        status=UploadSession.Status.COMPLETE,
        parts=2,
        finished_at=now - timedelta(hours=2),
        storage=fs_storage,
    )
    cancelled = make_session(
        status=UploadSession.Status.ABORTED,
        parts=1,
        finished_at=now - timedelta(minutes=5),
        storage=fs_storage,
    )
    UploadFile.objects.filter(pk=done.file_id).update(status=UploadFile.Status.STORED)
    UploadFile.objects.filter(pk=cancelled.file_id).update(status=UploadFile.Status.FAILED)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()

    port = free_port()
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    server = start(
        [
            sys.executable,
            str(MANAGE_PY),
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
            "--insecure",
        ],
        env=environment,
        log_path=server_log,
    )
    worker = start(
        [str(CELERY), "-A", "boot", "worker", "--concurrency", "1", "--pidfile="],
        env=environment,
        log_path=worker_log,
    )
    try:
        wait_for_port(port, process=server, log_path=server_log)
        driven = subprocess.run(
            [
                "node",
                str(HERE / "operator_console.js"),
                f"http://127.0.0.1:{port}",
                "operator",
                PASSWORD,
                str(SCREENSHOTS),
            ],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=HERE,
        )
    finally:
        stop(worker)
        stop(server)
    assert driven.returncode == 0, (
        f"{driven.stderr}\nserver:\n{server_log.read_text()[-3000:]}\nworker:\n{worker_log.read_text()[-3000:]}"
    )
    seen = json.loads(driven.stdout)

    assert seen["indexLinksDashboard"]
    assert seen["dashboardTitle"].startswith("Cleanup dashboard")
    assert {"Last live run", "Next scheduled run", "Waiting for grace"} <= set(seen["tiles"])
    assert seen["charts"] == 2
    assert seen["offsite"] == []  # works offline: nothing fetched from elsewhere
    assert {run["mode"] for run in seen["runs"]} == {"live", "dry run"}
    for run in seen["runs"]:
        assert run["status"] == "success", run
        # The admin's runs are whole runs: every step of every cycle.
        assert run["stepRows"] == len(STEPS) and "orphan_temp_parts" in run["steps"], run
    live = CleanupRun.objects.get(trigger="admin", dry_run=False)
    assert live.counts["total"]["expired"] == 1
    assert len(seen["screenshots"]) == 13
    assert all(Path(path).stat().st_size > 10_000 for path in seen["screenshots"])
