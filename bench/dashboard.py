"""The admin's cleanup dashboard on a large database: response time of the page and its selector.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal \
        .venv/bin/python bench/dashboard.py --sessions 1000000 --runs 100000 --deliveries 200000

DATABASE_URL names the server (the database itself need not exist): the benchmark
creates a scratch database ``<name>_bench_dashboard``, migrates it, seeds it with
``INSERT … SELECT generate_series`` (no client memory) and drops it at the end:

- ``--sessions`` upload sessions with their files: 97% complete, finished one every
  5 seconds back from now (their parts deleted, except the last half hour's, which
  wait out the grace period with 4 parts each), 1% failed, 2% still in progress
  with 4 parts each;
- ``--runs`` cleanup runs, one every 10 minutes back from now, every 50th a dry run,
  every 200th skipped, with the five steps' counts of a real run;
- ``--deliveries`` outbox events with one delivery each, 1% dead.

Measured in this process after ``VACUUM ANALYZE``, logging in production form
(LOG_FORMAT=json LOG_LEVEL=INFO, to ``--log-file``, default discarded), DEBUG off:
the selector ``cleanup_dashboard()`` and the whole page
``GET /admin/portal/cleanupdashboard/`` as a superuser, ``--repeat`` times each
after one warm-up (median and worst). The baseline, in the same run on the same
data: the same page with the dashboard's two indexes of migration 0008 dropped
(in a transaction, rolled back). One line per figure; ``--explain`` also prints
each query's plan (for PEP 0026).
"""

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import scratch_database  # noqa: E402

DASHBOARD_INDEXES = ("portal_cleanup_live_idx", "portal_delivery_dead_idx")
GOAL_MS = 200

COUNTS_SQL = """jsonb_build_object(
    'stale_sessions', jsonb_build_object('expired', i %% 5, 'duration_ms', 3 + i %% 40),
    'orphan_temp_parts', jsonb_build_object('deleted', i %% 300, 'failed', (i %% 97 = 0)::int,
        'foreign', 0, 'bytes_reclaimed', (i %% 300)::bigint * 8388608, 'duration_ms', 20 + i %% 900),
    'failed_sessions', jsonb_build_object('pruned', i %% 7, 'duration_ms', 2 + i %% 30),
    'orphan_storage_objects', jsonb_build_object('deleted', i %% 3, 'failed', 0,
        'foreign', i %% 11, 'bytes_reclaimed', (i %% 3) * 1024, 'duration_ms', 50 + i %% 2000),
    'outbox', jsonb_build_object('pruned', i %% 40, 'duration_ms', 4 + i %% 60),
    'total', jsonb_build_object('expired', i %% 5, 'deleted', i %% 300 + i %% 7 + i %% 3 + i %% 40,
        'failed', (i %% 97 = 0)::int, 'bytes_reclaimed', (i %% 300)::bigint * 8388608 + (i %% 3) * 1024))"""

SEED_SQL = f"""
INSERT INTO portal_uploadfile (id, created_at, updated_at, original_filename, content_type,
    size_bytes, sha256, status, uploaded_by_id, storage_backend, storage_bucket, storage_key)
SELECT ('00000002-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, now(), now(),
    'bench-' || i || '.bin', 'application/octet-stream', 64, '',
    CASE WHEN i %% 100 < 97 THEN 'stored' WHEN i %% 100 = 97 THEN 'failed' ELSE 'uploading' END,
    %(user)s, 'filesystem', '', ''
FROM generate_series(1, %(sessions)s) i;

INSERT INTO portal_uploadsession (id, created_at, updated_at, file_id, created_by_id, status,
    chunk_size_bytes, total_size_bytes, total_parts, completed_parts, bytes_received,
    idempotency_key, last_activity_at, finished_at, failure_reason)
SELECT ('00000001-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, now(), now(),
    ('00000002-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, %(user)s,
    CASE WHEN i %% 100 < 97 THEN 'complete' WHEN i %% 100 = 97 THEN 'failed' ELSE 'in_progress' END,
    16, 64, 4, 4, 64, '', now() - i * interval '5 seconds',
    CASE WHEN i %% 100 < 98 THEN now() - i * interval '5 seconds' END,
    CASE WHEN i %% 100 = 97 THEN 'expired' ELSE '' END
FROM generate_series(1, %(sessions)s) i;

INSERT INTO portal_uploadpart (id, created_at, updated_at, session_id, part_number,
    size_bytes, sha256, temp_storage_key, cleanup_claimed_until)
SELECT ('00000003-0000-7000-8000-' || lpad(to_hex(i * 4 + p), 12, '0'))::uuid, now(), now(),
    ('00000001-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, p, 16, '',
    'tmp/' || right(lpad(to_hex(i), 12, '0'), 2) || '/00000001-0000-7000-8000-'
        || lpad(to_hex(i), 12, '0') || '-' || lpad(p::text, 6, '0') || '-bench.part', NULL
FROM generate_series(1, %(sessions)s) i, generate_series(1, 4) p
WHERE i %% 100 >= 98 OR i * 5 < 1800;

INSERT INTO portal_cleanuprun (id, created_at, updated_at, trigger, dry_run, status,
    started_at, finished_at, counts, errors)
SELECT ('00000004-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, now(), now(), 'beat',
    i %% 50 = 0,
    CASE WHEN i %% 200 = 0 THEN 'skipped' WHEN i %% 97 = 0 THEN 'partial' ELSE 'success' END,
    now() - i * interval '10 minutes',
    now() - i * interval '10 minutes' + (100 + i %% 3000) * interval '1 millisecond',
    {COUNTS_SQL}, '[]'::jsonb
FROM generate_series(1, %(runs)s) i;

INSERT INTO portal_outboxevent (id, created_at, updated_at, event_type, payload,
    aggregate_type, aggregate_id, idempotency_key)
SELECT ('00000005-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
    now() - i * interval '1 minute', now(), 'file.stored', '{{}}'::jsonb, 'file', i::text,
    'bench-' || i
FROM generate_series(1, %(deliveries)s) i;

INSERT INTO portal_outboxdelivery (id, created_at, updated_at, event_id, destination,
    endpoint_id, status, attempts, next_attempt_at, claim_token, last_status_code,
    last_error, delivered_at)
SELECT ('00000006-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
    now() - i * interval '1 minute', now(),
    ('00000005-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'runner', NULL,
    CASE WHEN i %% 100 = 0 THEN 'failed' WHEN i %% 100 < 90 THEN 'delivered' ELSE 'pending' END,
    1, now(), NULL, 200, '', CASE WHEN i %% 100 BETWEEN 1 AND 89 THEN now() END
FROM generate_series(1, %(deliveries)s) i;
"""


def main(args):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must point at a PostgreSQL server")
    server_url = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = scratch_database(server_url, suffix="bench_dashboard", create=True)
    os.environ.update(
        DJANGO_CONFIGURATION="Dev", DEBUG="false", LOG_FORMAT="json", LOG_LEVEL="INFO"
    )
    log = open(args.log_file, "a")  # noqa: SIM115 - stays open for the process's lifetime
    os.dup2(log.fileno(), sys.stderr.fileno())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
    import configurations

    configurations.setup()
    from django.core.management import call_command

    try:
        call_command("migrate", verbosity=0)
        seeded = timed(lambda: seed(args))
        print(
            f"seed            {args.sessions:,} sessions, {args.runs:,} runs, "
            f"{args.deliveries:,} deliveries in {seeded:.0f} s"
        )
        measure(args)
    finally:
        from django.db import connections

        connections.close_all()
        scratch_database(server_url, suffix="bench_dashboard", create=False)


def seed(args) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    user = get_user_model().objects.create_superuser("bench", password="bench")
    with connection.cursor() as cursor:
        cursor.execute(
            SEED_SQL,
            {
                "user": user.pk,
                "sessions": args.sessions,
                "runs": args.runs,
                "deliveries": args.deliveries,
            },
        )
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def sample(function, repeat: int) -> list[float]:
    function()  # warm-up: connection, templates, caches
    return [timed(function) * 1000 for _ in range(repeat)]


def measure(args) -> None:
    from django.db import connection, transaction
    from django.test import Client

    from portal.selectors.dashboard import cleanup_dashboard

    client = Client(HTTP_HOST="localhost")
    client.login(username="bench", password="bench")

    def page():
        response = client.get("/admin/portal/cleanupdashboard/")
        assert response.status_code == 200, response.status_code

    rss_before = peak_rss_mib()
    selector = sample(cleanup_dashboard, args.repeat)
    report("selector cleanup_dashboard()", selector)
    served = sample(page, args.repeat)
    report("page GET /admin/portal/cleanupdashboard/", served)
    print(f"memory          peak RSS {rss_before:.0f} MiB before, {peak_rss_mib():.0f} MiB after")
    if args.explain:
        explain()
    with transaction.atomic():
        with connection.cursor() as cursor:
            for name in DASHBOARD_INDEXES:
                cursor.execute(f'DROP INDEX "{name}"')
        baseline = sample(page, args.repeat)
        transaction.set_rollback(True)
    report("baseline page without 0008's indexes", baseline)
    ratio = statistics.median(baseline) / statistics.median(served)
    print(f"ratio           baseline / page median = {ratio:.1f}x")


def report(what: str, samples: list[float]) -> None:
    median, worst = statistics.median(samples), max(samples)
    verdict = "meets" if median < GOAL_MS else "MISSES"
    print(
        f"{what:<44} median {median:7.1f} ms  worst {worst:7.1f} ms  "
        f"({verdict} the {GOAL_MS} ms goal, n={len(samples)})"
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def explain() -> None:
    """Each query the selector runs, with PostgreSQL's plan of it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.selectors.dashboard import cleanup_dashboard

    with CaptureQueriesContext(connection) as queries:
        cleanup_dashboard()
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}")
            print(f"\n-- {query['time']} s: {sql}")
            for (line,) in cursor.fetchall():
                print(f"   {line}")
    print()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    parser.add_argument("--log-file", default=os.devnull)
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
