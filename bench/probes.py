"""Latency and throughput of the Kubernetes probes, served as in production.

Command (any existing PostgreSQL database will do; /ready only runs ``SELECT 1``):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/probes.py --seconds 10

Starts gunicorn (one sync worker) on a free loopback port in the Production
configuration (JSON logs at INFO, persistent database connections, HTTPS
redirect on) with filesystem storage in a temporary directory. Then, one path
after the other, ``--clients`` threads send GET requests for ``--seconds``
each (after a warm-up) and one line is printed per figure: requests per second,
p50 and p99 latency in milliseconds. A sync worker closes the connection after
every response, so each request opens a new TCP connection, as kubelet does.

The baseline is Django admin's login page: a small page rendered through the
full middleware stack (it carries ``X-Forwarded-Proto: https``, as behind the
ingress, so it is not redirected). Goals: /health p99 < 5 ms; /ready p99 <
25 ms while PostgreSQL and storage are healthy.
"""

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WARM_UP_REQUESTS = 50
BASELINE = ("baseline /admin/login/", "/admin/login/", {"X-Forwarded-Proto": "https"})
PROBES = [("/health", "/health", {}), ("/ready", "/ready", {})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="measuring time per path")
    parser.add_argument("--clients", type=int, default=1, help="concurrent client threads")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL (postgres://...)")

    with (
        tempfile.TemporaryDirectory(prefix="portal-bench-") as scratch,
        serve(database_url=database_url, scratch=Path(scratch)) as port,
    ):
        for label, path, headers in [BASELINE, *PROBES]:
            warm_up(port, path, headers)
            latencies, elapsed = measure(
                port, path, headers, seconds=args.seconds, clients=args.clients
            )
            report(f"{label} req/s {len(latencies) / elapsed:.0f}")
            report(f"{label} p50 {percentile(latencies, 50):.2f} ms")
            report(f"{label} p99 {percentile(latencies, 99):.2f} ms")


@contextmanager
def serve(*, database_url: str, scratch: Path):
    """gunicorn on a socket bound here (no race for the port); yields the port."""
    storage = scratch / "storage"
    storage.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "boot.settings",
        "DJANGO_CONFIGURATION": "Production",
        "SECRET_KEY": os.urandom(32).hex(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "PORTAL_STORAGE_BACKEND": "filesystem",
        "PORTAL_STORAGE_ROOT": str(storage),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = listener.getsockname()[1]
    with listener, open(scratch / "gunicorn.log", "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "boot.wsgi:application",
                f"--bind=fd://{listener.fileno()}",
                "--workers=1",
                "--worker-class=sync",
                "--no-control-socket",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            pass_fds=(listener.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_serving(port, server, scratch / "gunicorn.log")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_until_serving(port: int, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited:\n{log_path.read_text()}")
        try:
            if get(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "/ready", {}) == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"/ready did not answer 200 within 30 s:\n{log_path.read_text()}")


def get(connection: http.client.HTTPConnection, path: str, headers: dict) -> int:
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def warm_up(port: int, path: str, headers: dict) -> None:
    """Open the database connection, build the storage adapter, load templates."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(WARM_UP_REQUESTS):
        get(connection, path, headers)
    connection.close()


def measure(port, path, headers, *, seconds, clients):
    """Latencies (ms) of every request the clients send in ``seconds``; exits on a non-200."""
    latencies: list[float] = []
    failures: list[int] = []
    started = time.monotonic()

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while time.monotonic() - started < seconds:
            begin = time.perf_counter()
            status = get(connection, path, headers)
            latencies.append((time.perf_counter() - begin) * 1000)
            if status != 200:
                failures.append(status)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"{path}: {len(failures)} answers were not 200 (first: {failures[0]})")
    return latencies, time.monotonic() - started


def percentile(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
