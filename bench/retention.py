"""Retention throughput and memory on PostgreSQL: notices/s, deletions/s, peak RSS.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal \
        .venv/bin/python bench/retention.py --sizes 100000,1000000 --naive 2000 --s3 100000

DATABASE_URL names the server (the database itself need not exist): the benchmark
creates a scratch database ``<name>_bench_retention``, migrates it (which seeds the
retention classes), and drops it at the end. Each size runs in a fresh process, so
peak RSS values compare.

For each size N, N stored files of class ``general`` (30 days, notice 48 h), stored
40 days ago, are inserted with ``INSERT … SELECT generate_series``, each with a real
(empty) final object on the filesystem adapter (on S3: moto's server in its own
process, its bucket seeded in memory before it serves; deletes go over HTTP). Then,
on that data, in this order:

- part deletion, the baseline goal: ``cleanup_orphan_temp_parts`` over the parts of
  ``--parts`` sessions (4 each), set up as bench/cleanup.py does;
- notices: a naive per-row loop (save + ``emit_event`` per file) over the first
  ``--naive`` files; one raw SQL UPDATE of the remaining files' ``expiring_notified_at``
  (rolled back); ``notify_expiring_files`` over the remaining files;
- deletions, once the notices are moved ``notice`` into the past (setup, untimed):
  a naive loop (storage delete, save, ``FileDeletion``, ``emit_event`` per file)
  over ``--naive`` files; one raw SQL UPDATE of the remaining files to ``deleted``
  (rolled back); ``delete_expired_files`` over the remaining files.

Logging is the production configuration (LOG_FORMAT=json LOG_LEVEL=INFO), written
to ``--log-file`` (default: discarded). No webhook destination is configured and the
dispatcher kick is disconnected (no broker here), for the loops and the service alike.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import support as bench_support  # noqa: E402
from bench.cleanup import PARTS, SEED_SQL, part_key, settle, timed  # noqa: E402
from bench.support import free_port, scratch_database  # noqa: E402

SUFFIX = "bench_retention"
FILES_SQL = """
TRUNCATE portal_uploadpart, portal_uploadsession, portal_uploadfile, portal_cleanuprun,
    portal_retentionchange, portal_filedeletion, portal_outboxdelivery, portal_outboxevent CASCADE;
INSERT INTO portal_uploadfile (id, created_at, updated_at, original_filename, content_type,
    size_bytes, sha256, status, uploaded_by_id, storage_backend, storage_bucket, storage_key,
    stored_at, retention_policy_id, expires_at, legal_hold, legal_hold_reason)
SELECT ('00000004-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, now(), now(),
    'bench.bin', 'application/octet-stream', 64, '', 'stored', %(user)s, %(backend)s,
    %(bucket)s, 'files/00000004-0000-7000-8000-' || lpad(to_hex(i), 12, '0') || '/bench.bin',
    now() - interval '40 days', %(policy)s, now() - interval '10 days', false, ''
FROM generate_series(1, %(n)s) i;
"""
RAW_NOTICE_SQL = """
UPDATE portal_uploadfile SET expiring_notified_at = now(), updated_at = now()
WHERE status = 'stored' AND NOT legal_hold AND expiring_notified_at IS NULL
    AND expires_at <= now() + interval '48 hours'
"""
RAW_DELETE_SQL = """
UPDATE portal_uploadfile SET status = 'deleted', deleted_at = now(), updated_at = now()
WHERE status = 'stored' AND NOT legal_hold AND expires_at <= now()
    AND expiring_notified_at <= now() - interval '48 hours'
"""


def final_key(i: int) -> str:
    """The key FILES_SQL gives file ``i`` (the layout of keys.final_key)."""
    return f"files/00000004-0000-7000-8000-{i:012x}/bench.bin"


# -- the parent: scratch database, child processes, one line per figure ----------------


def child(args, *scenario) -> dict:
    command = [sys.executable, __file__, "--child", *scenario, "--log-file", args.log_file]
    command += ["--naive", str(args.naive), "--parts", str(args.parts)]
    command += ["--s3-port", str(args.s3_port)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(args):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must point at a PostgreSQL server")
    server_url = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = scratch_database(server_url, suffix=SUFFIX, create=True)
    os.environ.update(
        DJANGO_CONFIGURATION="Dev", DEBUG="false", LOG_FORMAT="json", LOG_LEVEL="INFO"
    )
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"],
        check=True,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    try:
        results = []
        for size in args.sizes:
            results.append(child(args, str(size), "filesystem"))
            report("filesystem", results[-1])
        if args.s3:
            os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
            report("s3", child(args, str(args.s3), "s3"))
        if len(results) >= 2:
            small, large = results[0], results[-1]
            print(
                f"memory          peak RSS {large['n']:,}: {large['rss_mb']:.0f} MiB vs "
                f"{small['n']:,}: {small['rss_mb']:.0f} MiB = "
                f"{large['rss_mb'] / small['rss_mb']:.2f}x (goal < 1.5x)"
            )
    finally:
        scratch_database(server_url, suffix=SUFFIX, create=False)


def report(backend, r):
    print(
        f"{backend:<10} n={r['n']:>9,}  notices {r['notice_rate']:>8,.0f}/s = "
        f"{100 * r['notice_rate'] / r['raw_notice_rate']:.0f}% of raw SQL "
        f"{r['raw_notice_rate']:,.0f}/s (goal >= 50%), {r['notice_rate'] / r['naive_notice_rate']:.0f}x "
        f"naive {r['naive_notice_rate']:,.0f}/s"
    )
    print(
        f"{backend:<10} n={r['n']:>9,}  deletions {r['delete_rate']:>8,.0f}/s = "
        f"{r['delete_rate'] / r['naive_delete_rate']:.0f}x naive {r['naive_delete_rate']:,.0f}/s "
        f"(goal >= 20x), {100 * r['delete_rate'] / r['parts_rate']:.0f}% of part deletion "
        f"{r['parts_rate']:,.0f}/s (goal >= 50%), raw SQL {r['raw_delete_rate']:,.0f}/s"
    )
    print(f"{backend:<10} n={r['n']:>9,}  peak RSS {r['rss_mb']:.0f} MiB")


# -- the children: one measurement each, in a fresh process ---------------------------


def setup_django(log_file):
    bench_support.setup_django(log_file)
    from portal.receivers import kick_dispatcher
    from portal.signals import event_emitted

    event_emitted.disconnect(kick_dispatcher, dispatch_uid="portal.kick_dispatcher")


def part_deletion_rate(storage, sessions: int) -> float:
    """Parts deleted/s by cleanup_orphan_temp_parts, set up as bench/cleanup.py does."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from portal.services.cleanup import cleanup_orphan_temp_parts

    user, _ = get_user_model().objects.get_or_create(username="bench")
    seed_sql = SEED_SQL.replace(
        "portal_cleanuprun ", "portal_cleanuprun, portal_retentionchange, portal_filedeletion "
    )
    assert seed_sql != SEED_SQL
    with connection.cursor() as cursor:
        cursor.execute(seed_sql, {"n": sessions, "user": user.pk})
        cursor.execute(
            "UPDATE portal_uploadsession SET status = 'failed', failure_reason = 'expired',"
            " finished_at = now() - interval '1 day'"
        )
        settle(cursor)
    if storage.backend == "filesystem":
        for shard in range(256):
            (storage.root / f"tmp/{shard:02x}").mkdir(parents=True, exist_ok=True)
        for i in range(1, sessions + 1):
            for part in range(1, PARTS + 1):
                os.close(os.open(storage.root / part_key(i, part), os.O_CREAT | os.O_WRONLY))
    results = []
    seconds = timed(
        lambda: results.append(
            cleanup_orphan_temp_parts(now=timezone.now(), dry_run=False, storage=storage)
        )
    )
    assert results[0].deleted == sessions * PARTS, results
    return sessions * PARTS / seconds


def seed_files(storage, n: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from portal.models import RetentionPolicy

    user, _ = get_user_model().objects.get_or_create(username="bench")
    params = {
        "n": n,
        "user": user.pk,
        "backend": storage.backend,
        "bucket": storage.bucket,
        "policy": RetentionPolicy.objects.get(code="general").pk,
    }
    with connection.cursor() as cursor:
        cursor.execute(FILES_SQL, params)
        settle(cursor)
    if storage.backend == "filesystem":
        for i in range(1, n + 1):
            path = storage.root / final_key(i)
            path.parent.mkdir(parents=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY))


def raw(sql: str) -> float:
    """Seconds one UPDATE takes; rolled back, then its dead rows vacuumed (untimed)."""
    from django.db import connection, transaction

    def update():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
            transaction.set_rollback(True)

    seconds = timed(update)
    with connection.cursor() as cursor:
        settle(cursor)
    return seconds


def naive_notices(n: int, now) -> float:
    from django.db import transaction

    from portal.models import UploadFile
    from portal.services.outbox import emit_event
    from portal.services.sessions import FileInfo

    def loop():
        due = UploadFile.objects.filter(status="stored", expiring_notified_at__isnull=True)
        for upload in due.select_related("retention_policy").order_by("pk")[:n].iterator():
            with transaction.atomic():
                upload.expiring_notified_at = now
                upload.save()
                emit_event(
                    event_type="file.expiring",
                    aggregate_type="upload_file",
                    aggregate_id=upload.pk,
                    idempotency_key=f"file.expiring:{upload.pk}:{now.isoformat()}",
                    body={
                        "file": FileInfo.of(upload).as_dict(),
                        "expires_at": upload.expires_at.isoformat(),
                        "delete_after": (now + upload.retention_policy.notice).isoformat(),
                    },
                    now=now,
                )

    return n / timed(loop)


def naive_deletions(n: int, storage, now) -> float:
    from django.db import transaction

    from portal.models import FileDeletion, UploadFile
    from portal.services.outbox import emit_event
    from portal.services.sessions import FileInfo

    def loop():
        due = UploadFile.objects.filter(status="stored", expiring_notified_at__isnull=False)
        for upload in due.select_related("retention_policy").order_by("pk")[:n].iterator():
            storage.delete_final(upload.storage_key)
            with transaction.atomic():
                upload.status, upload.deleted_at = "deleted", now
                upload.save()
                FileDeletion.objects.create(
                    file_id=upload.pk,
                    original_filename=upload.original_filename,
                    storage_backend=upload.storage_backend,
                    storage_bucket=upload.storage_bucket,
                    storage_key=upload.storage_key,
                    size_bytes=upload.size_bytes,
                    sha256=upload.sha256,
                    retention_class=upload.retention_policy.code,
                    retention_period=upload.retention_policy.retention,
                    stored_at=upload.stored_at,
                    expires_at=upload.expires_at,
                    notified_at=upload.expiring_notified_at,
                    deleted_at=now,
                    reason="retention_expired",
                )
                emit_event(
                    event_type="file.deleted",
                    aggregate_type="upload_file",
                    aggregate_id=upload.pk,
                    idempotency_key=f"file.deleted:{upload.pk}",
                    body={"file": FileInfo.of(upload).as_dict(), "reason": "retention_expired"},
                    now=now,
                )

    return n / timed(loop)


def run_service(n: int, backend: str, naive: int, parts: int) -> dict:
    from django.db import connection
    from django.utils import timezone

    from portal.services.retention import delete_expired_files, notify_expiring_files
    from portal.storage import build_storage

    storage = build_storage(backend)
    parts_rate = part_deletion_rate(storage, parts)
    seed_files(storage, n)
    remaining = n - naive

    now = timezone.now()
    naive_notice_rate = naive_notices(naive, now)
    raw_notice_rate = remaining / raw(RAW_NOTICE_SQL)
    notices = []
    notice_seconds = timed(
        lambda: notices.append(notify_expiring_files(now=now, dry_run=False, storage=storage))
    )
    assert notices[0].notified == remaining, notices
    with connection.cursor() as cursor:
        # The notice period passes (setup, untimed).
        cursor.execute(
            "UPDATE portal_uploadfile SET expiring_notified_at = now() - interval '3 days'"
        )
        settle(cursor)
    now = timezone.now()
    naive_delete_rate = naive_deletions(naive, storage, now)
    raw_delete_rate = remaining / raw(RAW_DELETE_SQL)
    deleted = []
    delete_seconds = timed(
        lambda: deleted.append(delete_expired_files(now=now, dry_run=False, storage=storage))
    )
    assert deleted[0].deleted == remaining and not deleted[0].failed, deleted
    return {
        "n": n,
        "parts_rate": parts_rate,
        "naive_notice_rate": naive_notice_rate,
        "raw_notice_rate": raw_notice_rate,
        "notice_rate": remaining / notice_seconds,
        "naive_delete_rate": naive_delete_rate,
        "raw_delete_rate": raw_delete_rate,
        "delete_rate": remaining / delete_seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def start_s3_server(bucket: str, files: int, sessions: int, port: int) -> subprocess.Popen:
    port = port or free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-s3", str(port), bucket, str(files), str(sessions)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if server.stdout.readline().strip() != "ready":
        raise SystemExit(f"the S3 server exited with {server.wait()}")
    os.environ.update(
        AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_STORAGE_BUCKET_NAME=bucket
    )
    return server


def serve_s3(port: str, bucket: str, files: str, sessions: str) -> None:
    """moto's server, its bucket holding the files' and the parts' objects before it serves."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.create_bucket(bucket, "us-east-1")
    for i in range(1, int(files) + 1):
        backend.put_object(bucket, final_key(i), b"")
    for i in range(1, int(sessions) + 1):
        for part in range(1, PARTS + 1):
            backend.put_object(bucket, part_key(i, part), b"")
    ThreadedMotoServer(ip_address="127.0.0.1", port=int(port), verbose=False).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def run_child(args):
    n, backend = args.child
    root = tempfile.mkdtemp(prefix="bench-retention-")
    os.environ["PORTAL_STORAGE_ROOT"] = root
    s3 = (
        start_s3_server("bench-retention", int(n), args.parts, args.s3_port)
        if backend == "s3"
        else None
    )
    setup_django(args.log_file)
    try:
        result = run_service(int(n), backend, args.naive, args.parts)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if s3:
            s3.terminate()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100_000, 1_000_000],
        help="stored file counts on the filesystem, smallest first (default: 100000,1000000)",
    )
    parser.add_argument("--naive", type=int, default=2_000, help="files of each naive sample")
    parser.add_argument(
        "--parts", type=int, default=25_000, help="sessions (4 parts each) of the part baseline"
    )
    parser.add_argument("--s3", type=int, default=100_000, help="stored files on S3 (0: skip)")
    parser.add_argument("--s3-port", type=int, default=0, help="moto's port (default: a free one)")
    parser.add_argument("--log-file", default=os.devnull)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--serve-s3", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_s3:
        serve_s3(*arguments.serve_s3)
    elif arguments.child:
        run_child(arguments)
    else:
        main(arguments)
