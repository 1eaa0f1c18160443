"""The portal as a real server process (gunicorn) for tests with real tus clients."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = Path(__file__).resolve().parent / "js"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The test database the test process uses, for the server process to share."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class PortalServer:
    """gunicorn serving the portal on one port, which survives a kill and restart."""

    def __init__(self, storage_root: Path, *, chunk_size: int, log_path: Path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "boot.settings",
            "DJANGO_CONFIGURATION": "Test",
            "DATABASE_URL": database_url(),
            "PORTAL_STORAGE_BACKEND": "filesystem",
            "PORTAL_STORAGE_ROOT": str(storage_root),
            "PORTAL_CHUNK_SIZE": str(chunk_size),
            "PORTAL_CHUNK_SIZE_MIN": str(chunk_size),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            **env,
        }
        self.process = None

    def command(self) -> list[str]:
        gunicorn_conf = ROOT / "boot" / "gunicorn.conf.py"
        if gunicorn_conf.exists():  # the production server config (SPEC §14)
            return [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(gunicorn_conf),
                "--bind",
                f"127.0.0.1:{self.port}",
            ]
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "boot.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "120",
        ]

    def start(self) -> "PortalServer":
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.url}/health", timeout=5).ok:
                    return self
            except requests.RequestException:  # not listening, or still booting
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the portal did not start; see {self.log_path}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, not a shutdown."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def restart(self) -> None:
        self.kill()
        self.start()
