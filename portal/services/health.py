"""Readiness of the portal's dependencies, answered within a fixed time budget.

A readiness probe must never hang: a dependency that hangs rather than refuses
must turn into "not ready" as quickly as one that refuses. So the checks run in
a small pool of reused worker threads while the caller waits at most
``PORTAL_READY_TIMEOUT_SECONDS`` for them. A check that outlives its probe is
left to finish in the background and is never started a second time: later
probes wait on the same check, so a hung database costs one thread, not one
per probe.

Liveness (``/health``) deliberately checks nothing here: restarting the pod
cannot repair a database.
"""

import copy
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.utils import load_backend

from portal import conf
from portal.exceptions import StorageError
from portal.logs import get_logger
from portal.metrics import counters
from portal.storage import StorageAdapter, get_storage

log = get_logger(__name__)

# Enough for the database and storage checks plus one of each still hanging.
POOL_SIZE = 4
# libpq (and psycopg) refuse connect timeouts below two seconds.
MIN_CONNECT_TIMEOUT_SECONDS = 2

TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    ms: float
    error: str = ""  # TIMEOUT or UNAVAILABLE when not ok; never details

    def as_dict(self) -> dict:
        result = {"ok": self.ok, "ms": self.ms}
        if self.error:
            result["error"] = self.error
        return result


@dataclass(frozen=True)
class ReadinessReport:
    database: CheckResult
    storage: CheckResult

    @property
    def ok(self) -> bool:
        return self.database.ok and self.storage.ok

    @property
    def status(self) -> str:
        return "ok" if self.ok else UNAVAILABLE

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "checks": {"database": self.database.as_dict(), "storage": self.storage.as_dict()},
        }


def check_readiness(
    *,
    database: str = DEFAULT_DB_ALIAS,
    storage: StorageAdapter | None = None,
    timeout: float | None = None,
) -> ReadinessReport:
    """Check the database ``database`` and the storage adapter concurrently.

    Returns within ``timeout`` seconds (default ``PORTAL_READY_TIMEOUT_SECONDS``)
    whatever the dependencies do. Failure details are logged, never returned.
    """
    timeout = conf.ready_timeout() if timeout is None else timeout
    started = time.monotonic()
    futures = _start_checks(database, storage or get_storage(), timeout)
    wait(futures.values(), timeout=timeout)
    waited_ms = _ms_since(started)
    results = {name: _result(name, future, waited_ms) for name, future in futures.items()}
    report = ReadinessReport(**results)
    counters.readiness_checked(report)
    return report


def start_readiness_checks(*, database: str = DEFAULT_DB_ALIAS) -> dict[str, Future]:
    """Start the readiness checks without waiting for them; their futures by name.

    A server calls this as each worker starts (``boot/gunicorn.conf.py``), so the
    one-time costs of a process's first checks (its probe connection; botocore
    loading its models for the S3 check client, up to a second of CPU) are paid
    before the first probe instead of inside that probe's budget. A probe that
    arrives while they run waits on them rather than starting its own.
    """
    futures = _start_checks(database, get_storage(), conf.ready_timeout())
    log.info("ready.checks_started", checks=sorted(futures))
    return futures


def _start_checks(database: str, storage: StorageAdapter, timeout: float) -> dict[str, Future]:
    return {
        "database": _start(("database", database), lambda: _check_database(database, timeout)),
        # Keyed by the adapter itself: a new adapter (new settings) gets a new check.
        "storage": _start(("storage", id(storage)), storage.check),
    }


def _result(name: str, future: Future, waited_ms: float) -> CheckResult:
    if not future.done():
        log.warning("ready.check_timed_out", check=name, waited_ms=waited_ms)
        return CheckResult(ok=False, ms=waited_ms, error=TIMEOUT)
    ok, ms = future.result()
    return CheckResult(ok=ok, ms=ms, error="" if ok else UNAVAILABLE)


# -- running checks -------------------------------------------------------------

_in_flight: dict[tuple, Future] = {}
_in_flight_lock = threading.Lock()


def _start(key: tuple, check: Callable[[], None]) -> Future:
    """The running check for ``key``, started now unless one is still in flight."""
    with _in_flight_lock:
        future = _in_flight.get(key)
        if future is not None:
            return future
        future = _pool.submit(lambda: _timed(key[0], check))
        _in_flight[key] = future
    future.add_done_callback(lambda done: _forget(key, done))
    return future


def _forget(key: tuple, future: Future) -> None:
    with _in_flight_lock:
        if _in_flight.get(key) is future:
            del _in_flight[key]


def _timed(name: str, check: Callable[[], None]) -> tuple[bool, float]:
    """Run ``check``; (passed, milliseconds). The reason of a failure goes to the log only."""
    started = time.monotonic()
    try:
        check()
    except (DatabaseError, StorageError) as exc:
        ms = _ms_since(started)
        log.warning("ready.check_failed", check=name, ms=ms, error=str(exc).strip())
        return False, ms
    return True, _ms_since(started)


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


class _DaemonPool:
    """A fixed set of daemon threads running submitted callables.

    Unlike ``ThreadPoolExecutor``, whose threads are joined at interpreter exit,
    a thread stuck on a frozen dependency never holds up a worker's shutdown.
    """

    def __init__(self, size: int):
        self._size = size
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable) -> Future:
        self._start_threads()
        future = Future()
        self._tasks.put((future, fn))
        return future

    def _start_threads(self) -> None:
        with self._lock:
            if self._started:
                return
            for number in range(self._size):
                threading.Thread(
                    target=self._work, name=f"portal-ready-{number}", daemon=True
                ).start()
            self._started = True

    def _work(self) -> None:
        while True:
            future, fn = self._tasks.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # handed to the waiting probe, as concurrent.futures does
                future.set_exception(exc)
            else:
                future.set_result(result)


_pool = _DaemonPool(POOL_SIZE)


# -- the database check ---------------------------------------------------------

_probe_connections: dict[str, object] = {}
_probe_connections_lock = threading.Lock()


def _check_database(alias: str, timeout: float) -> None:
    """``SELECT 1`` on the probe's own connection to ``alias``.

    A persistent connection the server has dropped since (restart, failover) is
    replaced once before the database counts as down.
    """
    db = _probe_connection(alias, timeout)
    db.close_if_unusable_or_obsolete()
    reused = db.connection is not None
    try:
        try:
            _select_one(db)
        except DatabaseError:
            if not reused:
                raise
            db.close()
            _select_one(db)
    finally:
        # Same life cycle as a request's connection: closed unless CONN_MAX_AGE keeps it.
        db.close_if_unusable_or_obsolete()


def _select_one(db) -> None:
    with db.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _probe_connection(alias: str, timeout: float):
    """One connection per alias for the probe, apart from request connections.

    Its own settings bound the connect time and the statement time, and keep
    ``CONN_MAX_AGE`` from the alias. Only one check per alias runs at a time
    (see ``_start``), so pool threads may take turns with it.
    """
    with _probe_connections_lock:
        db = _probe_connections.get(alias)
        if db is None:
            settings_dict = copy.deepcopy(connections.settings[alias])
            # Django's own health check would cost a second round trip; _check_database
            # replaces a dropped connection itself.
            settings_dict["CONN_HEALTH_CHECKS"] = False
            # Its own connection, not one borrowed from the requests' pool (which a
            # burst of requests may have taken, and whose connect time is not bounded).
            settings_dict["OPTIONS"].pop("pool", None)
            db = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)
            if db.vendor == "postgresql":
                _bound_postgres_time(settings_dict["OPTIONS"], timeout)
            db.inc_thread_sharing()
            _probe_connections[alias] = db
        return db


def _bound_postgres_time(options: dict, timeout: float) -> None:
    options["connect_timeout"] = max(MIN_CONNECT_TIMEOUT_SECONDS, math.ceil(timeout))
    statement_timeout = f"-c statement_timeout={math.ceil(timeout * 1000)}"
    options["options"] = f"{options.get('options', '')} {statement_timeout}".strip()
