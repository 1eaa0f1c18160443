"""Latency of ``/metrics`` over a large database, and what metrics cost ``/health``.

Command (a scratch database ``<name>_bench_metrics`` is created next to the one named,
and dropped at the end):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/metrics.py --sessions 1000000 --deliveries 1000000 --runs 100000

Seeds PostgreSQL with raw SQL (``INSERT … SELECT generate_series``): upload
sessions with their files (mostly complete), outbox events with one delivery each
(98 % delivered, 1.5 % pending, 0.5 % dead) and cleanup runs (a third of them dry).
Then serves the portal with the production server config (``gunicorn -c
boot/gunicorn.conf.py``, one sync worker, Production settings: JSON logs at INFO,
persistent connections) and prints one line per figure:

- ``/metrics`` p99 on the empty database first (the baseline), then p50/p99 on
  the seeded one (goal: p99 < 50 ms) and their ratio; every scrape runs the
  database gauges and merges the multiprocess files;
- ``/health`` p99 with ``PORTAL_METRICS_ENABLED`` on and off, measured in
  alternating rounds on two servers, and their ratio (goal: within 10 %);
- the worker's RSS before and after the ``/metrics`` rounds (memory flat).
"""

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probes import measure, percentile, report, warm_up
from support import scratch_database

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10, help="measuring time per round")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL (postgres://...)")
    database = scratch_database(url, suffix="bench_metrics", create=True)
    try:
        with tempfile.TemporaryDirectory(prefix="portal-bench-") as scratch:
            env = production_env(database, Path(scratch))
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"],
                cwd=PROJECT_ROOT,
                env=env,
                check=True,
            )
            with serve({**env, "PORTAL_METRICS_ENABLED": "true"}, Path(scratch)) as server:
                warm_up(server.port, "/metrics", {})
                empty = measure(server.port, "/metrics", {}, seconds=args.seconds, clients=1)[0]
            report(f"/metrics p99 empty database {percentile(empty, 99):.2f} ms (baseline)")
            started = time.monotonic()
            seed(database, sessions=args.sessions, deliveries=args.deliveries, runs=args.runs)
            report(
                f"seeded {args.sessions} sessions, {args.deliveries} deliveries, {args.runs} runs"
                f" in {time.monotonic() - started:.0f} s"
            )
            run_rounds(env, Path(scratch), seconds=args.seconds, empty=empty)
    finally:
        scratch_database(url, suffix="bench_metrics", create=False)


def production_env(database: str, scratch: Path) -> dict:
    storage = scratch / "storage"
    storage.mkdir()
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "boot.settings",
        "DJANGO_CONFIGURATION": "Production",
        "SECRET_KEY": os.urandom(32).hex(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database,
        "PORTAL_STORAGE_BACKEND": "filesystem",
        "PORTAL_STORAGE_ROOT": str(storage),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "GUNICORN_CMD_ARGS": "--workers=1",
    }


SEED_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
VALUES ('!', false, 'bench', '', '', '', false, true, now());

CREATE TEMP TABLE ids AS
SELECT n, gen_random_uuid() AS file_id, gen_random_uuid() AS session_id
FROM generate_series(1, %(sessions)s) AS n;

INSERT INTO portal_uploadfile (id, created_at, updated_at, original_filename, content_type,
    size_bytes, sha256, status, storage_backend, storage_bucket, storage_key, uploaded_by_id)
SELECT file_id, now() - n * interval '1 second', now(), 'f' || n || '.bin', 'application/octet-stream',
       1024, '', CASE WHEN n % 50 = 0 THEN 'failed' ELSE 'stored' END, 'filesystem', '', '',
       (SELECT id FROM auth_user WHERE username = 'bench')
FROM ids;

INSERT INTO portal_uploadsession (id, created_at, updated_at, status, chunk_size_bytes,
    total_size_bytes, total_parts, completed_parts, bytes_received, idempotency_key,
    last_activity_at, finished_at, failure_reason, created_by_id, file_id)
SELECT session_id, now() - n * interval '1 second', now(),
       CASE WHEN n % 50 = 0 THEN 'failed' WHEN n % 100 = 1 THEN 'in_progress' ELSE 'complete' END,
       1024, 1024, 1, 1, 1024, '', now() - n * interval '1 second',
       CASE WHEN n % 100 = 1 THEN NULL ELSE now() - n * interval '1 second' END,
       CASE WHEN n % 50 = 0 THEN 'expired' ELSE '' END,
       (SELECT id FROM auth_user WHERE username = 'bench'), file_id
FROM ids;

DROP TABLE ids;

CREATE TEMP TABLE events AS
SELECT n, gen_random_uuid() AS id FROM generate_series(1, %(deliveries)s) AS n;

INSERT INTO portal_outboxevent (id, created_at, updated_at, event_type, payload,
    aggregate_type, aggregate_id, idempotency_key)
SELECT id, now() - n * interval '1 second', now(), 'file.stored', '{}', 'upload_file',
       n::text, 'bench-' || n
FROM events;

INSERT INTO portal_outboxdelivery (id, created_at, updated_at, event_id, destination, status,
    attempts, next_attempt_at, last_error, delivered_at)
SELECT gen_random_uuid(), now() - n * interval '1 second', now(), id, 'runner',
       CASE WHEN n % 200 = 0 THEN 'failed' WHEN n % 200 < 4 THEN 'pending' ELSE 'delivered' END,
       1, now(), '',
       CASE WHEN n % 200 >= 4 THEN now() - n * interval '1 second' END
FROM events;

DROP TABLE events;

INSERT INTO portal_cleanuprun (id, created_at, updated_at, trigger, dry_run, status,
    started_at, finished_at, counts, errors)
SELECT gen_random_uuid(), now(), now(), 'beat', n % 3 = 0,
       CASE WHEN n % 20 = 0 THEN 'partial' ELSE 'success' END,
       now() - n * interval '10 minutes', now() - n * interval '10 minutes' + interval '2 seconds',
       '{"stale_sessions": {"expired": 1}, "total": {"expired": 1}}', '[]'
FROM generate_series(1, %(runs)s) AS n;
"""


def seed(database: str, **sizes) -> None:
    import psycopg

    with psycopg.connect(database, autocommit=True) as connection:
        for statement in filter(str.strip, SEED_SQL.split(";\n")):
            for name, size in sizes.items():
                statement = statement.replace(f"%({name})s", str(int(size)))
            connection.execute(statement)
        connection.execute("VACUUM ANALYZE")


def run_rounds(env: dict, scratch: Path, *, seconds: float, empty: list[float]) -> None:
    health = {True: [], False: []}
    metrics = []
    rss = []
    for _ in range(ROUNDS):
        for enabled in (False, True):
            with serve({**env, "PORTAL_METRICS_ENABLED": str(enabled).lower()}, scratch) as server:
                warm_up(server.port, "/health", {})
                health[enabled] += measure(server.port, "/health", {}, seconds=seconds, clients=1)[
                    0
                ]
                if enabled:
                    warm_up(server.port, "/metrics", {})
                    rss.append(server.worker_rss_kib())
                    metrics += measure(server.port, "/metrics", {}, seconds=seconds, clients=1)[0]
                    rss.append(server.worker_rss_kib())
    report(f"/metrics scrapes {len(metrics)}")
    report(f"/metrics p50 {percentile(metrics, 50):.2f} ms")
    report(f"/metrics p99 {percentile(metrics, 99):.2f} ms (goal < 50 ms)")
    report(f"/metrics p99 seeded/empty ratio {percentile(metrics, 99) / percentile(empty, 99):.2f}")
    off, on = percentile(health[False], 99), percentile(health[True], 99)
    report(f"/health p99 metrics off {off:.2f} ms (baseline)")
    report(f"/health p99 metrics on {on:.2f} ms")
    report(f"/health p99 on/off ratio {on / off:.2f} (goal <= 1.10)")
    report(f"worker RSS around /metrics rounds {' -> '.join(f'{k // 1024} MiB' for k in rss)}")


class Server:
    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port

    def worker_rss_kib(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        worker = children.split()[0]
        for line in Path(f"/proc/{worker}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


@contextmanager
def serve(env: dict, scratch: Path):
    """The production server config on a socket bound here; yields a ``Server``."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = listener.getsockname()[1]
    log_path = scratch / "gunicorn.log"
    with listener, open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "boot/gunicorn.conf.py",
                f"--bind=fd://{listener.fileno()}",
                "--no-control-socket",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            pass_fds=(listener.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"gunicorn did not serve:\n{log_path.read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield Server(process, port)
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
