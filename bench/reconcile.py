"""reconcile_storage throughput and memory: objects/s against a bare listing, peak RSS.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal \
        .venv/bin/python bench/reconcile.py --sizes 100000,1000000 --s3 100000

DATABASE_URL names the server (the database itself need not exist): the benchmark
creates a scratch database ``<name>_bench_reconcile``, migrates it, and drops it at
the end. Each size is measured in a fresh process, so peak RSS values compare.

For each size N: N ``stored`` files are inserted with ``INSERT … SELECT
generate_series`` and their final objects written (filesystem: an empty file per
file under its own folder, as ``final_key`` lays them out; S3: moto's server in its
own process, seeded in memory before it serves, so the benchmark's listing still
goes over real HTTP with boto3). On top: ``ORPHANS`` own-shape objects with no row
(old enough to delete), ``FOREIGN`` keys of other shapes, ``MISSING`` stored rows
with no object. Then, in the same process on the same objects:

- the bare listing: the adapter's ``iter_final_pages`` consumed and counted, the
  floor any reconciliation walks on;
- ``reconcile_storage`` (live): every page's ids looked up and seen rows marked,
  orphans deleted, missing files confirmed and marked, foreign keys counted.

Logging is the production configuration (LOG_FORMAT=json LOG_LEVEL=INFO), written
to ``--log-file`` (default: discarded).
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

from bench.support import free_port, migrated_scratch_database, scratch_database, setup_django  # noqa: E402

ORPHANS, FOREIGN, MISSING = 100, 100, 100
BUCKET = "bench-reconcile"
FILE_ID = "00000002-0000-7000-8000-{:012x}"

SEED_SQL = """
TRUNCATE portal_uploadfile CASCADE;
INSERT INTO portal_uploadfile (id, created_at, updated_at, original_filename, content_type,
    size_bytes, sha256, status, uploaded_by_id, storage_backend, storage_bucket, storage_key,
    stored_at, legal_hold, legal_hold_reason)
SELECT ('00000002-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, now(), now(), 'f.bin',
    'application/octet-stream', 0, '', 'stored', %(user)s, %(backend)s, %(bucket)s,
    'files/00000002-0000-7000-8000-' || lpad(to_hex(i), 12, '0') || '/f.bin',
    now() - interval '2 days', false, ''
FROM generate_series(1, %(rows)s) i;
"""


def final_key(i: int) -> str:
    return f"files/{FILE_ID.format(i)}/f.bin"


def objects(n: int):
    """Every key the benchmark stores: N files with rows, orphans, foreign keys."""
    for i in range(1, n + 1):
        yield final_key(i)
    for i in range(n + MISSING + 1, n + MISSING + ORPHANS + 1):
        yield final_key(i)  # no row: an orphan
    for i in range(FOREIGN):
        yield f"files/backups/{i}.tar"


def main(args):
    migrated_scratch_database("bench_reconcile")
    try:
        if args.s3:
            os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
            report("s3", child(args, str(args.s3), "s3"))
        results = []
        for size in args.sizes:
            results.append(child(args, str(size), "filesystem"))
            report("filesystem", results[-1])
        if len(results) >= 2:
            small, large = results[0], results[-1]
            ratio = large["rss_mb"] / small["rss_mb"]
            print(
                f"memory          peak RSS {large['n']:,}: {large['rss_mb']:.0f} MiB vs "
                f"{small['n']:,}: {small['rss_mb']:.0f} MiB = {ratio:.2f}x (goal <= 1.5x)"
            )
    finally:
        scratch_database(
            os.environ["DATABASE_URL"].rsplit("_bench_reconcile", 1)[0],
            suffix="bench_reconcile",
            create=False,
        )


def child(args, *scenario) -> dict:
    command = [sys.executable, __file__, "--log-file", args.log_file, "--child", *scenario]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(backend, result):
    ratio = result["reconcile_rate"] / result["list_rate"]
    print(
        f"{backend:<16} n={result['n']:>9,}  bare listing {result['list_rate']:>9,.0f} objects/s"
        f"  reconcile_storage {result['reconcile_rate']:>9,.0f} objects/s"
        f" = {100 * ratio:.0f}% of the listing (goal >= 30%)  peak RSS {result['rss_mb']:.0f} MiB"
    )


# -- the children: one measurement each, in a fresh process ---------------------------


def seed(n: int, storage) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    user, _ = get_user_model().objects.get_or_create(username="bench")
    params = {"rows": n + MISSING, "user": user.pk, "backend": storage.backend}
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, {**params, "bucket": storage.bucket})
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")
    if storage.backend == "filesystem":
        old = time.time() - 2 * 86400
        for key in objects(n):
            path = storage.root / key
            os.makedirs(path.parent, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            os.utime(path, (old, old))


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def run_child(args):
    n, backend = int(args.child[0]), args.child[1]
    root = tempfile.mkdtemp(prefix="bench-reconcile-")
    os.environ["PORTAL_STORAGE_ROOT"] = root
    server = start_s3_server(n) if backend == "s3" else None
    setup_django(args.log_file)
    try:
        result = measure(n, backend)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if server:
            server.terminate()
    sys.stdout.write(json.dumps(result) + "\n")


def measure(n: int, backend: str) -> dict:
    from datetime import timedelta

    from django.utils import timezone

    from portal.services.reconcile import reconcile_storage
    from portal.storage import build_storage

    storage = build_storage(backend)
    seed(n, storage)
    total = n + ORPHANS + FOREIGN
    listed = []
    list_seconds = timed(lambda: listed.append(sum(map(len, storage.iter_final_pages()))))
    results = []
    # A day on: the orphans (S3: written just now) are past the grace period.
    now = timezone.now() + timedelta(days=1)
    seconds = timed(
        lambda: results.append(reconcile_storage(now=now, dry_run=False, storage=storage))
    )
    result = results[0]
    expected = (total, ORPHANS, MISSING, FOREIGN)
    got = (result.scanned, result.deleted, result.missing, result.foreign)
    assert listed == [total] and got == expected, (listed, got, expected)
    return {
        "n": n,
        "list_rate": total / list_seconds,
        "reconcile_rate": total / seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def start_s3_server(n: int) -> subprocess.Popen:
    """moto's server in its own process, its bucket seeded; this process's S3 endpoint."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-s3", str(port), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if server.stdout.readline().strip() != "ready":
        raise SystemExit(f"the S3 server exited with {server.wait()}")
    os.environ.update(
        AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_STORAGE_BUCKET_NAME=BUCKET
    )
    return server


def serve_s3(port: int, n: int) -> None:
    """Put the objects straight into moto's in-memory backend, then serve HTTP."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.create_bucket(BUCKET, "us-east-1")
    for key in objects(n):
        backend.put_object(BUCKET, key, b"")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[100_000, 1_000_000],
        help="final objects on the filesystem, smallest first (default: 100000,1000000)",
    )
    parser.add_argument("--s3", type=int, default=100_000, help="objects on S3 (0: skip)")
    parser.add_argument("--log-file", default=os.devnull)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve-s3", nargs=2, type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_s3:
        serve_s3(*arguments.serve_s3)
    elif arguments.child:
        run_child(arguments)
    else:
        main(arguments)
