"""The README's run command starts web, worker and beat on embedded defaults."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_scripts_run_serves_admin_and_starts_worker_and_beat(tmp_path):
    port = free_port()
    log_path = tmp_path / "run.log"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "PORTAL_", "CELERY_"))
        },
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "PORTAL_STORAGE_ROOT": str(tmp_path / "storage"),
    }
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = requests.get(
                    f"http://127.0.0.1:{port}/admin/login/", timeout=2
                ).status_code
            except requests.ConnectionError:
                time.sleep(0.5)
                continue
            output = log_path.read_text()
            if "ready." in output and "beat: Starting" in output:
                break
            time.sleep(0.5)
        output = log_path.read_text()
        assert status == 200, output[-3000:]
        assert "celery@" in output and "ready." in output, output[-3000:]
        assert "beat: Starting" in output, output[-3000:]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
