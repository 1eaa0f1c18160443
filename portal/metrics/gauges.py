"""Gauges read from the database when Prometheus scrapes (SPEC §12).

State that lives in rows (the outbox backlog, when cleanup last succeeded) is
read at scrape time rather than kept in process memory: every replica reports
the same truth, and it survives restarts. Alert rules take ``max()`` over
replicas. Each query is answered from an index (partial indexes of migration
0007 for the outbox), whatever the size of the tables.

A gauge source is a function of ``now`` yielding metric families; adding one is
one function appended to ``SOURCES``.
"""

from collections.abc import Callable, Iterator
from datetime import UTC

from django.db import DatabaseError, connection
from django.db.models import Func, IntegerField
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from portal import schedule
from portal.logs import get_logger
from portal.models import CleanupRun, OutboxDelivery
from portal.selectors.compliance import overdue_files

log = get_logger(__name__)


def scalars(**querysets) -> dict:
    """Evaluate single-value querysets (one row, one column) in one round trip.

    Each stays its own subquery, so each keeps its own index plan.
    """
    columns, params = [], []
    for name, queryset in querysets.items():
        sql, query_params = queryset.query.sql_with_params()
        columns.append(f"({sql}) AS {connection.ops.quote_name(name)}")
        params.extend(query_params)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(columns)}", params)
        return dict(zip(querysets, cursor.fetchone(), strict=True))


def count(queryset):
    """``SELECT COUNT(*)`` of ``queryset``: answered from a partial index alone."""
    return queryset.order_by().values(n=Func(template="COUNT(*)", output_field=IntegerField()))


def outbox_gauges(now) -> Iterator[GaugeMetricFamily]:
    pending = OutboxDelivery.objects.filter(status=OutboxDelivery.Status.PENDING)
    found = scalars(
        pending=count(pending),
        dead=count(OutboxDelivery.objects.dead()),
        oldest=pending.order_by("created_at").values("created_at")[:1],
    )
    yield GaugeMetricFamily(
        "portal_outbox_pending", "Webhook deliveries waiting to be sent.", value=found["pending"]
    )
    yield GaugeMetricFamily(
        "portal_outbox_dead",
        "Webhook deliveries that ran out of attempts (replay them from the admin).",
        value=found["dead"],
    )
    oldest = found["oldest"]
    if isinstance(oldest, str):  # a raw SQLite cursor returns naive text, PostgreSQL aware
        oldest = parse_datetime(oldest)
    if oldest and timezone.is_naive(oldest):
        oldest = timezone.make_aware(oldest, UTC)
    yield GaugeMetricFamily(
        "portal_outbox_oldest_pending_age_seconds",
        "Age of the oldest delivery still pending; 0 when none is.",
        value=(now - oldest).total_seconds() if oldest else 0,
    )


def cleanup_gauges(now) -> Iterator[GaugeMetricFamily]:
    last_success = (
        CleanupRun.objects.filter(status=CleanupRun.Status.SUCCESS, dry_run=False)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    if last_success is not None:
        yield GaugeMetricFamily(
            "portal_cleanup_last_success_timestamp_seconds",
            "When the last live cleanup run that succeeded finished (unix time).",
            value=last_success.timestamp(),
        )
    next_run = schedule.next_run(schedule.CLEANUP)
    if next_run is not None:
        yield GaugeMetricFamily(
            "portal_cleanup_next_run_timestamp_seconds",
            "When beat is due to send the cleanup task next (unix time).",
            value=next_run.timestamp(),
        )
    yield GaugeMetricFamily(
        "portal_cleanup_interval_seconds",
        "Interval between cleanup runs (the one beat runs, else the setting).",
        value=schedule.interval(schedule.CLEANUP).total_seconds(),
    )


def retention_gauges(now) -> Iterator[GaugeMetricFamily]:
    yield GaugeMetricFamily(
        "portal_retention_overdue_files",
        "Stored files past expiry, notice and three cleanup intervals, not on hold (SPEC §11).",
        value=overdue_files(now=now).count(),
    )


SOURCES: tuple[Callable[..., Iterator[GaugeMetricFamily]], ...] = (
    outbox_gauges,
    cleanup_gauges,
    retention_gauges,
)


class DatabaseGauges(Collector):
    """A prometheus-client collector running every source in ``SOURCES`` at each scrape.

    A source whose query fails is left out of that scrape (and logged), so counters
    are still served while the database is down.
    """

    def collect(self):
        now = timezone.now()
        for source in SOURCES:
            try:
                families = list(source(now))
            except DatabaseError as exc:
                log.warning(
                    "metrics.gauges_failed", source=source.__name__, error=type(exc).__name__
                )
                continue
            yield from families
