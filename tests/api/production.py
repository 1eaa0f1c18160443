"""The portal under its production server config, ``boot/gunicorn.conf.py``, in a subprocess.

Shared by the slow-client tests and ``bench/slow_clients.py``: gunicorn is
started exactly as the Dockerfile starts it, plus ``--bind`` to a loopback
socket bound here (gunicorn takes it over: no race for a port).
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = PROJECT_ROOT / "boot" / "gunicorn.conf.py"


def production_env(*, database_url: str, storage_root: Path, **overrides) -> dict:
    """The environment of a production pod, on local storage and the given database."""
    return {
        **os.environ,
        "DJANGO_CONFIGURATION": "Production",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "slow-clients-test-secret-key-of-enough-length-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "PORTAL_STORAGE_BACKEND": "filesystem",
        "PORTAL_STORAGE_ROOT": str(storage_root),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        **overrides,
    }


def manage(*args: str, env: dict) -> str:
    """Run ``manage.py`` with ``env`` and return its output (raises on failure)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout


class ProductionServer:
    """``gunicorn -c boot/gunicorn.conf.py --bind fd://N`` with ``env``; log in ``log_path``."""

    def __init__(self, *, env: dict, log_path: Path, extra_args: tuple[str, ...] = ()):
        listener = socket.create_server(("127.0.0.1", 0), backlog=2048)
        self.port = listener.getsockname()[1]
        self.log_path = log_path
        with listener, open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    str(CONFIG),
                    f"--bind=fd://{listener.fileno()}",
                    *extra_args,
                ],
                cwd=PROJECT_ROOT,
                env=env,
                pass_fds=(listener.fileno(),),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_ready()

    def request(self, method: str, path: str, *, body=None, headers=None, timeout=10.0):
        """One request on a fresh connection: ``(status, parsed JSON or None)``."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = json.dumps(body).encode() if isinstance(body, dict) else body
            connection.request(method, path, body=payload, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        return response.status, (json.loads(raw) if raw else None)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log()}")
            try:
                if self.request("GET", "/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log()}")


def stalled_part(port: int, path: str, token: str, *, length: int, sent: bytes) -> socket.socket:
    """A part upload that sends its headers and ``sent``, then nothing: the socket, still open."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode()
        + sent
    )
    return conn


def read_answer(conn: socket.socket, *, timeout: float) -> tuple[int, dict | None]:
    """The status and JSON body the server sends on ``conn`` (``(0, None)`` if it just closes)."""
    conn.settimeout(timeout)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
    finally:
        conn.close()
    if not data:
        return 0, None
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(body) if body.strip() else None)
