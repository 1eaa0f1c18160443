"""The README's run command starts web, worker and beat on embedded defaults, and stops them."""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def processes_with(marker):
    """Pids of the processes whose environment carries ``marker`` (all that the run started)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_scripts_run_serves_admin_starts_worker_and_beat_and_stops_them(tmp_path, stop_signal):
    port = free_port()
    marker = f"PORTAL_RUN_TEST_ID={uuid.uuid4().hex}"
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
        marker.split("=")[0]: marker.split("=")[1],
    }
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As from a terminal: a shell started in the background would ignore SIGINT.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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
        home = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert home.history and home.url.endswith("/admin/login/?next=/admin/")
        started = processes_with(marker)
        assert len(started) >= 4  # script, runserver and its reloader child, worker, beat...

        # As a terminal's Ctrl-C (SIGINT to the foreground group) or `kill PID` would.
        if stop_signal == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        deadline = time.monotonic() + 10
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_with(marker) == [], log_path.read_text()[-3000:]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=2)
    finally:
        for pid in processes_with(marker):  # only after a failure: leave nothing behind
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=20)
