"""Deliveries per second of the outbox dispatcher to a local receiver, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal \
        .venv/bin/python bench/dispatch.py --deliveries 5000

DATABASE_URL names the server (and credentials; the database itself need not
exist): the benchmark creates a scratch database ``<name>_bench_dispatch`` there and
drops it at the end. A fast threaded
HTTP receiver (keep-alive, answers 204) runs in a separate process. For each figure,
N due runner deliveries are seeded, then timed until every one is delivered:

- baseline: a naive per-row loop in one process (select one due row, POST on a new
  connection, update the row), no batching, no claims;
- the dispatcher (``dispatch_due_deliveries``) in 1 and in 4 worker processes.

Logging is the production configuration (LOG_FORMAT=json LOG_LEVEL=INFO), written to
``--log-file`` (default: discarded) so the terminal shows only the figures.
"""

import argparse
import multiprocessing
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import scratch_database

FORK = multiprocessing.get_context("fork")
SECRET = "whsec_YmVuY2htYXJrLXNpZ25pbmcta2V5"


class FastHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def serve_receiver(port_queue):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FastHandler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


def setup_django(database_url, receiver_url, log_file):
    os.environ.update(
        DJANGO_SETTINGS_MODULE="boot.settings",
        DJANGO_CONFIGURATION="Dev",
        DATABASE_URL=database_url,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        PORTAL_RUNNER_ENDPOINT=receiver_url,
        PORTAL_RUNNER_AUTH_SECRET=SECRET,
    )
    log = open(log_file, "a")  # noqa: SIM115 - stays open for the process's lifetime
    os.dup2(log.fileno(), sys.stderr.fileno())
    from configurations import importer

    importer.install()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(count):
    import uuid

    from django.db import connection
    from django.utils import timezone

    from portal.models import OutboxDelivery, OutboxEvent

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE portal_outboxdelivery, portal_outboxevent")
    now = timezone.now()
    for start in range(0, count, 1000):
        events = OutboxEvent.objects.bulk_create(
            OutboxEvent(
                event_type="file.stored",
                payload={"event_type": "file.stored", "file": {"id": str(uuid.uuid4()), "n": n}},
                aggregate_type="file",
                aggregate_id=str(n),
                idempotency_key=str(uuid.uuid4()),
            )
            for n in range(start, min(start + 1000, count))
        )
        OutboxDelivery.objects.bulk_create(
            OutboxDelivery(event=e, destination=OutboxDelivery.RUNNER, next_attempt_at=now)
            for e in events
        )


def delivered_count():
    from portal.models import OutboxDelivery

    return OutboxDelivery.objects.filter(status="delivered").count()


def naive_loop():
    """One due row at a time: select, POST on a fresh connection, update."""
    import requests
    from django.utils import timezone

    from portal import conf
    from portal.models import OutboxDelivery
    from portal.services.dispatcher import log, post

    while True:
        delivery = (
            OutboxDelivery.objects.due(timezone.now())
            .select_related("event")
            .order_by("next_attempt_at")
            .first()
        )
        if delivery is None:
            return
        started = time.monotonic()
        with requests.Session() as session:
            response = post(
                delivery,
                url=conf.runner_endpoint(),
                secret=conf.runner_auth_secret(),
                session=session,
                timeouts=conf.outbox_timeouts(),
            )
        log.info(
            "event.dispatched",
            event_id=str(delivery.event_id),
            destination=delivery.destination,
            status_code=response.status_code,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        now = timezone.now()
        OutboxDelivery.objects.filter(pk=delivery.pk).update(
            status="delivered",
            attempts=delivery.attempts + 1,
            last_status_code=response.status_code,
            delivered_at=now,
            updated_at=now,
        )


def dispatcher_worker(start, batch_size):
    from portal.services.dispatcher import dispatch_due_deliveries

    start.wait()
    dispatch_due_deliveries(batch_size=batch_size)


def time_workers(workers, batch_size):
    from django.db import connections

    connections.close_all()  # each forked worker opens its own connection
    start = FORK.Event()
    processes = [
        FORK.Process(target=dispatcher_worker, args=(start, batch_size)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    began = time.perf_counter()
    start.set()
    for process in processes:
        process.join()
    return time.perf_counter() - began


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--log-file", default=os.devnull)
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL=postgres://... (the benchmark needs PostgreSQL).")

    ports = FORK.Queue()
    receiver = FORK.Process(target=serve_receiver, args=(ports,), daemon=True)
    receiver.start()
    receiver_url = f"http://127.0.0.1:{ports.get(timeout=10)}/"
    out = sys.stdout
    setup_django(
        scratch_database(database_url, suffix="bench_dispatch", create=True),
        receiver_url,
        args.log_file,
    )
    try:
        n = args.deliveries

        seed(n)
        began = time.perf_counter()
        naive_loop()
        elapsed = time.perf_counter() - began
        assert delivered_count() == n
        out.write(f"baseline naive per-row loop, 1 process: {n / elapsed:.0f} deliveries/s\n")
        out.flush()

        for workers in (1, 4):
            seed(n)
            elapsed = time_workers(workers, args.batch_size)
            assert delivered_count() == n, "some deliveries were not delivered"
            out.write(f"dispatcher, {workers} worker process(es): {n / elapsed:.0f} deliveries/s\n")
            out.flush()
    finally:
        from django.db import connections

        connections.close_all()
        receiver.terminate()
        scratch_database(database_url, suffix="bench_dispatch", create=False)


if __name__ == "__main__":
    main()
