"""The portal's counters and the one-line hooks services call to move them (SPEC §12).

Counters count what a process did; under prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``) every process writes its own file and a scrape
adds them up, so gunicorn workers, or Celery's pool processes, report one total.
Every label takes a small, fixed set of values. Each hook runs after the change it
counts has been committed: a rolled-back write is never counted.
"""

from prometheus_client import Counter, Histogram

SESSION_OUTCOMES = ("complete", "aborted", "expired", "checksum_mismatch")
DELIVERY_OUTCOMES = ("delivered", "retried", "dead")
# The counts of a cleanup step that are not items: they go to their own counter.
NOT_ITEM_COUNTS = frozenset({"bytes_reclaimed"})

SESSIONS_OPENED = Counter(
    "portal_upload_sessions_opened", "Upload sessions opened (idempotent repeats excluded)."
)
SESSIONS = Counter(
    "portal_upload_sessions",
    "Upload sessions that ended, by outcome (complete, aborted, expired, checksum_mismatch).",
    ["outcome"],
)
UPLOAD_BYTES = Counter(
    "portal_upload_bytes", "Bytes of upload parts received and counted (re-sends excluded)."
)
CLEANUP_ITEMS = Counter(
    "portal_cleanup_items",
    "Items live cleanup runs handled, by step and result (deleted, failed, expired, ...).",
    ["step", "result"],
)
CLEANUP_BYTES = Counter(
    "portal_cleanup_bytes_reclaimed", "Bytes of storage live cleanup runs freed, by step.", ["step"]
)
CLEANUP_DURATION = Histogram(
    "portal_cleanup_run_duration_seconds",
    "Wall time of cleanup runs that were not skipped.",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200),
)
DELIVERIES = Counter(
    "portal_outbox_deliveries",
    "Webhook delivery attempts recorded, by outcome (delivered, retried, dead).",
    ["outcome"],
)
READINESS = Counter(
    "portal_readiness_checks",
    "Readiness checks answered, by check (database, storage) and result (ok, timeout, unavailable).",
    ["check", "result"],
)

# Known label values start at zero, so rates exist before the first event.
for _outcome in SESSION_OUTCOMES:
    SESSIONS.labels(_outcome)
for _outcome in DELIVERY_OUTCOMES:
    DELIVERIES.labels(_outcome)


def session_opened() -> None:
    SESSIONS_OPENED.inc()


def session_finished(outcome: str) -> None:
    """A session became terminal: ``outcome`` is one of ``SESSION_OUTCOMES``."""
    SESSIONS.labels(outcome).inc()


def part_received(receipt) -> None:
    """A part arrived (a ``PartReceipt``); only a newly counted part adds bytes."""
    if receipt.created:
        UPLOAD_BYTES.inc(receipt.size_bytes)


def deliveries_recorded(counts) -> None:
    """The outcomes ``record_outcomes`` committed for one claimed batch."""
    for outcome in DELIVERY_OUTCOMES:
        if counts.get(outcome):
            DELIVERIES.labels(outcome).inc(counts[outcome])


def readiness_checked(report) -> None:
    """One ``/ready`` answer (a ``ReadinessReport``): one increment per check."""
    for check in ("database", "storage"):
        result = getattr(report, check)
        READINESS.labels(check, "ok" if result.ok else result.error).inc()


def cleanup_finished(sender, run, **kwargs) -> None:
    """Receiver of ``portal.signals.cleanup_finished``: count a finished ``CleanupRun``.

    A skipped run did nothing. A dry run's counts are what a live run would do, so
    only its duration counts. ``counts`` is ``{step: {name: n}, "total": {...}}``.
    """
    if run.status == run.Status.SKIPPED or run.finished_at is None:
        return
    CLEANUP_DURATION.observe((run.finished_at - run.started_at).total_seconds())
    if run.dry_run:
        return
    for step, counts in run.counts.items():
        if step == "total":
            continue
        for name, value in counts.items():
            if name in NOT_ITEM_COUNTS:
                CLEANUP_BYTES.labels(step).inc(value)
            elif isinstance(value, int) and value > 0:
                CLEANUP_ITEMS.labels(step, name).inc(value)
    expired = run.counts.get("stale_sessions", {}).get("expired", 0)
    if expired:
        SESSIONS.labels("expired").inc(expired)
