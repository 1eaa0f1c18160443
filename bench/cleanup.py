"""Cleanup throughput and memory on PostgreSQL: sessions expired/s, parts deleted/s, peak RSS.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal \
        .venv/bin/python bench/cleanup.py --sizes 100000,1000000 --naive 10000 --s3 100000 \
        --naive-s3 1000

DATABASE_URL names the server (the database itself need not exist): the benchmark
creates a scratch database ``<name>_bench_cleanup``, migrates it, and drops it at
the end. Each size is measured in a fresh process, so peak RSS values compare.

For each size N: N stale ``in_progress`` sessions with 4 parts each are inserted
with ``INSERT … SELECT generate_series`` (fast, no client memory), with ids
ordered by insertion as UUIDv7 ids are, and a real (empty) file per part is
written on the filesystem adapter (on S3, moto's server in its own process,
``bench/s3_server.py``, holds every object in memory). Then, on that data:

- the naive baseline: a loop saving one session and its file per row over the
  first ``--naive`` sessions (``--naive-s3`` on S3), then one storage delete and
  one row delete per part of those sessions. It runs on the same tables and
  folders as the service, in the same process, so both rates come from the same
  data and the same state of the machine;
- raw SQL: one UPDATE of the remaining stale sessions plus one of their files
  (rolled back): the practical limit of expiry;
- ``cleanup_stale_sessions``: batched, locked, conditional expiry;
- ``cleanup_orphan_temp_parts`` over their parts once the sessions are past
  the grace period;
- ``sweep_orphan_storage_objects`` (filesystem only) over the same part objects
  written again with no rows left: every key is proven the portal's by its shape
  and its session checked not to be active (PEP 0020), then deleted. Compare the
  figure of two trees (before/after a change) run back to back: copy this script
  into the other tree's ``bench/`` and run it there; it calls the steps through
  their keyword arguments only, which both layouts take.

Logging is the production configuration (LOG_FORMAT=json LOG_LEVEL=INFO), written
to ``--log-file`` (default: discarded).
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import free_port, migrated_scratch_database, scratch_database, setup_django  # noqa: E402

PARTS = 4

SEED_SQL = """
TRUNCATE portal_uploadpart, portal_uploadsession, portal_uploadfile, portal_cleanuprun CASCADE;
INSERT INTO portal_uploadfile (id, created_at, updated_at, original_filename, content_type,
    size_bytes, sha256, status, uploaded_by_id, storage_backend, storage_bucket, storage_key)
SELECT ('00000002-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, now(), now(), 'bench.bin', 'application/octet-stream',
    64, '', 'uploading', %(user)s, '', '', ''
FROM generate_series(1, %(n)s) i;
INSERT INTO portal_uploadsession (id, created_at, updated_at, file_id, created_by_id, status,
    chunk_size_bytes, total_size_bytes, total_parts, completed_parts, bytes_received,
    idempotency_key, last_activity_at, finished_at, failure_reason)
SELECT ('00000001-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, now(), now(),
    ('00000002-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, %(user)s, 'in_progress',
    16, 64, 4, 4, 64, '', now() - interval '2 days', NULL, ''
FROM generate_series(1, %(n)s) i;
INSERT INTO portal_uploadpart (id, created_at, updated_at, session_id, part_number,
    size_bytes, sha256, temp_storage_key, cleanup_claimed_until)
SELECT ('00000003-0000-7000-8000-' || lpad(to_hex(i * 4 + p), 12, '0'))::uuid, now(), now(),
    ('00000001-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, p, 16, '',
    'tmp/' || right(lpad(to_hex(i), 12, '0'), 2) || '/00000001-0000-7000-8000-'
        || lpad(to_hex(i), 12, '0') || '-' || lpad(p::text, 6, '0') || '-'
        || md5(i || '-' || p) || '.part', NULL
FROM generate_series(1, %(n)s) i, generate_series(1, 4) p;
"""
RAW_EXPIRY_SQL = """
UPDATE portal_uploadfile SET status = 'failed', updated_at = now() WHERE id IN (
    SELECT file_id FROM portal_uploadsession
    WHERE status IN ('init', 'in_progress') AND last_activity_at < now() - interval '1 day');
UPDATE portal_uploadsession
SET status = 'failed', failure_reason = 'expired', finished_at = now(), updated_at = now()
WHERE status IN ('init', 'in_progress') AND last_activity_at < now() - interval '1 day';
"""


def part_key(i: int, part: int) -> str:
    """The key SEED_SQL gives part ``part`` of session ``i``: exactly the shape
    keys.temp_part_key writes (a 32-hex-digit suffix), so the sweep proves it the portal's."""
    suffix = hashlib.md5(f"{i}-{part}".encode()).hexdigest()
    return f"tmp/{i % 256:02x}/00000001-0000-7000-8000-{i:012x}-{part:06d}-{suffix}.part"


# -- the parent: scratch database, child processes, one line per figure ----------------


def child(args, *scenario) -> dict:
    command = [sys.executable, __file__, "--child", *scenario, "--log-file", args.log_file]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(args):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must point at a PostgreSQL server")
    migrated_scratch_database("bench_cleanup")
    try:
        results = []
        for size in args.sizes:
            result = child(args, str(size), str(args.naive), "filesystem")
            results.append(result)
            report("filesystem", result)
        if args.s3:
            os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
            report("s3", child(args, str(args.s3), str(args.naive_s3), "s3"))
        if len(results) >= 2:
            small, large = results[0], results[-1]
            ratio = large["rss_mb"] / small["rss_mb"]
            print(
                f"memory          peak RSS {large['n']:,}: {large['rss_mb']:.0f} MiB vs "
                f"{small['n']:,}: {small['rss_mb']:.0f} MiB = {ratio:.2f}x (goal < 1.5x)"
            )
    finally:
        scratch_database(
            os.environ["DATABASE_URL"].rsplit("_bench_cleanup", 1)[0],
            suffix="bench_cleanup",
            create=False,
        )


def report(backend, result):
    n, naive = result["n"], result["naive"]
    print(
        f"naive {backend:<10} n={n:>9,} ({naive['n']:,} sessions)  "
        f"expire {naive['expire_rate']:>9,.0f} sessions/s  delete {naive['parts_rate']:>9,.0f} parts/s"
    )
    print(
        f"{backend:<16} n={n:>9,}  expire {result['expire_rate']:>9,.0f} sessions/s "
        f"({result['expire_rate'] / naive['expire_rate']:.0f}x naive, "
        f"{100 * result['expire_rate'] / result['raw_rate']:.0f}% of raw SQL "
        f"{result['raw_rate']:,.0f}/s)  delete {result['parts_rate']:>9,.0f} parts/s "
        f"({result['parts_rate'] / naive['parts_rate']:.0f}x naive)  "
        f"peak RSS {result['rss_mb']:.0f} MiB"
    )
    if result.get("sweep_rate"):
        print(
            f"sweep {backend:<10} n={n:>9,}  {result['sweep_rate']:>9,.0f} objects/s "
            f"({100 * result['sweep_rate'] / result['parts_rate']:.0f}% of part deletion)"
        )


# -- the children: one measurement each, in a fresh process ---------------------------


def seed(n: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    user, _ = get_user_model().objects.get_or_create(username="bench")
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, {"n": n, "user": user.pk})
        settle(cursor)


def settle(cursor) -> None:
    """Vacuum and checkpoint after setup writes, so neither lands in a timed section."""
    cursor.execute("VACUUM ANALYZE")
    cursor.execute("CHECKPOINT")


def write_objects(storage, n: int) -> None:
    """Create the part objects of ``n`` sessions (on S3, bench/s3_server.py did)."""
    if storage.backend == "filesystem":
        for shard in range(256):
            (storage.root / f"tmp/{shard:02x}").mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            for part in range(1, PARTS + 1):
                os.close(os.open(storage.root / part_key(i, part), os.O_CREAT | os.O_WRONLY, 0o644))


def finish_sessions() -> None:
    """Move the expired sessions past the grace period (setup, not timed)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE portal_uploadsession SET finished_at = now() - interval '1 day'"
            " WHERE status = 'failed'"
        )
        settle(cursor)


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def run_service(n: int, naive_sessions: int, backend: str) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from portal.services.cleanup import (
        cleanup_orphan_temp_parts,
        cleanup_stale_sessions,
        sweep_orphan_storage_objects,
    )
    from portal.storage import build_storage

    storage = build_storage(backend)
    seed(n)
    write_objects(storage, n)
    naive = run_naive(naive_sessions, storage)
    n -= naive_sessions

    def raw_expiry():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(RAW_EXPIRY_SQL)
            transaction.set_rollback(True)

    raw = timed(raw_expiry)
    with connection.cursor() as cursor:
        # Clear the rolled-back versions, as autovacuum would, before timing the service.
        settle(cursor)
    now = timezone.now()
    expired = []
    expire = timed(lambda: expired.append(cleanup_stale_sessions(now=now, dry_run=False)))
    finish_sessions()
    deleted = []
    parts = timed(
        lambda: deleted.append(
            cleanup_orphan_temp_parts(now=timezone.now(), dry_run=False, storage=storage)
        )
    )
    assert expired[0].expired == n and deleted[0].deleted == n * PARTS, (expired, deleted)
    sweep_rate = None
    if backend == "filesystem":
        # The same objects again, now with no part rows: crash leftovers for the sweep.
        write_objects(storage, n + naive_sessions)
        later = timezone.now() + timedelta(hours=1)  # past the grace period
        swept = []
        sweep = timed(
            lambda: swept.append(
                sweep_orphan_storage_objects(now=later, dry_run=False, storage=storage)
            )
        )
        assert swept[0].deleted == (n + naive_sessions) * PARTS, swept
        sweep_rate = swept[0].deleted / sweep
    return {
        "sweep_rate": sweep_rate,
        "n": n + naive_sessions,
        "naive": naive,
        "raw_rate": n / raw,
        "expire_rate": n / expire,
        "parts_rate": n * PARTS / parts,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_naive(n: int, storage) -> dict:
    """Expire the first ``n`` stale sessions and delete their parts one row at a time."""
    from django.db import connection
    from django.utils import timezone

    from portal.models import UploadPart, UploadSession

    now = timezone.now()

    def expire():
        stale = UploadSession.objects.filter(status__in=UploadSession.ACTIVE_STATUSES)
        for session in stale.select_related("file").order_by("pk")[:n].iterator():
            session.status, session.failure_reason, session.finished_at = "failed", "expired", now
            session.save()
            session.file.status = "failed"
            session.file.save()

    def delete_parts():
        for part in UploadPart.objects.filter(session__status="failed").iterator():
            storage.delete_many([part.temp_storage_key])
            part.delete()

    expire_seconds = timed(expire)
    parts_seconds = timed(delete_parts)
    with connection.cursor() as cursor:
        settle(cursor)
    return {"n": n, "expire_rate": n / expire_seconds, "parts_rate": n * PARTS / parts_seconds}


def start_s3_server(bucket: str, sessions: int) -> subprocess.Popen:
    """moto's server in its own process, its bucket seeded; this process's S3 endpoint."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "s3_server.py"), str(port), bucket, str(sessions)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if server.stdout.readline().strip() != "ready":
        raise SystemExit(f"bench/s3_server.py exited with {server.wait()}")
    os.environ.update(
        AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_STORAGE_BUCKET_NAME=bucket
    )
    return server


def run_child(args):
    n, naive_sessions, backend = args.child
    root = tempfile.mkdtemp(prefix="bench-cleanup-")
    os.environ["PORTAL_STORAGE_ROOT"] = root
    s3_server = start_s3_server("bench-cleanup", int(n)) if backend == "s3" else None
    setup_django(args.log_file)
    try:
        result = run_service(int(n), int(naive_sessions), backend)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if s3_server:
            s3_server.terminate()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100_000, 1_000_000],
        help="session counts, smallest first (default: 100000,1000000)",
    )
    parser.add_argument(
        "--naive", type=int, default=10_000, help="sessions of each naive sample (filesystem)"
    )
    parser.add_argument("--s3", type=int, default=100_000, help="sessions on S3 (0: skip)")
    parser.add_argument(
        "--naive-s3", type=int, default=1_000, help="sessions of the naive S3 sample"
    )
    parser.add_argument("--log-file", default=os.devnull)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    run_child(arguments) if arguments.child else main(arguments)
