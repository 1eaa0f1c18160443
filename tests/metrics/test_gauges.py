"""Scrape-time gauges: the database's truth, from index scans whatever the table sizes."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from portal import schedule
from portal.metrics.gauges import cleanup_gauges, outbox_gauges, retention_gauges
from portal.models import CleanupRun, OutboxDelivery, OutboxEvent
from tests.retention.helpers import DAY, NOW, stored_file

pytestmark = pytest.mark.django_db


def values(families) -> dict:
    return {family.name: family.samples[0].value for family in families}


def deliveries(now, statuses):
    """One event and delivery per status in ``statuses``, created one minute apart."""
    events = OutboxEvent.objects.bulk_create(
        OutboxEvent(
            event_type="file.stored",
            payload={},
            aggregate_type="file",
            aggregate_id=str(n),
            idempotency_key=str(uuid.uuid4()),
        )
        for n in range(len(statuses))
    )
    OutboxDelivery.objects.bulk_create(
        OutboxDelivery(
            event=event,
            destination="runner",
            status=status,
            created_at=now - timedelta(minutes=len(statuses) - n),
        )
        for n, (event, status) in enumerate(zip(events, statuses, strict=True))
    )


def test_outbox_gauges_count_pending_and_dead_and_age_the_oldest_pending():
    now = timezone.now()
    deliveries(now, ["delivered", "pending", "failed", "pending", "failed", "failed", "delivered"])

    assert values(outbox_gauges(now)) == {
        "portal_outbox_pending": 2,
        "portal_outbox_dead": 3,
        "portal_outbox_oldest_pending_age_seconds": 6 * 60,  # the second row, 6 minutes old
    }


def test_an_empty_outbox_has_no_pending_age():
    assert values(outbox_gauges(timezone.now()))["portal_outbox_oldest_pending_age_seconds"] == 0


def run(status, finished_at, **fields):
    return CleanupRun.objects.create(
        trigger="beat", status=status, started_at=finished_at, finished_at=finished_at, **fields
    )


@override_settings(PORTAL_CLEANUP_INTERVAL_MINUTES=10)
def test_last_success_counts_only_live_successful_runs_and_next_run_comes_from_beat():
    now = timezone.now().replace(microsecond=0)
    run("success", now - timedelta(hours=2))
    run("success", now - timedelta(hours=1), dry_run=True)
    run("partial", now - timedelta(minutes=30))
    run("skipped", now - timedelta(minutes=5))
    every_ten = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.update_or_create(
        name=schedule.CLEANUP,
        defaults={
            "task": "portal.tasks.portal_cleanup_task",
            "interval": every_ten,
            "enabled": True,
            "last_run_at": now - timedelta(minutes=4),
        },
    )

    assert values(cleanup_gauges(now)) == {
        "portal_cleanup_last_success_timestamp_seconds": (now - timedelta(hours=2)).timestamp(),
        "portal_cleanup_next_run_timestamp_seconds": (now + timedelta(minutes=6)).timestamp(),
        "portal_cleanup_interval_seconds": 600,
    }


def test_no_run_and_no_schedule_leave_out_the_timestamps():
    PeriodicTask.objects.filter(name=schedule.CLEANUP).delete()
    assert set(values(cleanup_gauges(timezone.now()))) == {"portal_cleanup_interval_seconds"}


@pytest.mark.postgres
def test_every_gauge_query_is_an_index_scan_at_scale():
    now = timezone.now()
    with connection.cursor() as cursor:
        # 200k deliveries, almost all delivered, as in a portal running for a while.
        cursor.execute(
            """
            WITH events AS (
                INSERT INTO portal_outboxevent
                    (id, created_at, updated_at, event_type, payload, aggregate_type,
                     aggregate_id, idempotency_key)
                SELECT gen_random_uuid(), now(), now(), 'file.stored', '{}', 'file', n::text,
                       'k' || n
                FROM generate_series(1, 200000) AS n
                RETURNING id, aggregate_id::int AS n
            )
            INSERT INTO portal_outboxdelivery
                (id, created_at, updated_at, event_id, destination, status, attempts,
                 next_attempt_at, last_error)
            SELECT gen_random_uuid(), now() - n * interval '1 second', now(), id, 'runner',
                   CASE WHEN n % 1000 = 0 THEN 'pending' WHEN n % 997 = 0 THEN 'failed'
                        ELSE 'delivered' END,
                   1, now(), ''
            FROM events
            """
        )
        cursor.execute(
            """
            INSERT INTO portal_cleanuprun
                (id, created_at, updated_at, trigger, dry_run, status, started_at, finished_at,
                 counts, errors)
            SELECT gen_random_uuid(), now(), now(), 'beat', n % 3 = 0,
                   CASE WHEN n % 5 = 0 THEN 'partial' ELSE 'success' END,
                   now() - n * interval '10 minutes', now() - n * interval '10 minutes', '{}', '[]'
            FROM generate_series(1, 50000) AS n
            """
        )
        cursor.execute("ANALYZE portal_outboxdelivery, portal_cleanuprun")

    with CaptureQueriesContext(connection) as queries:
        list(outbox_gauges(now))
        list(cleanup_gauges(now))

    plans = {}
    with connection.cursor() as cursor:
        for query in queries:
            if "django_celery_beat" in query["sql"]:
                continue  # a handful of schedule rows
            cursor.execute(f"EXPLAIN {query['sql']}")
            plans[query["sql"]] = "\n".join(row[0] for row in cursor.fetchall())
    outbox, runs = plans.values()  # one round trip per source
    for plan in (outbox, runs):
        assert "Seq Scan" not in plan, plan
    assert "portal_delivery_pending_idx" in outbox and "portal_delivery_dead_idx" in outbox, outbox
    assert outbox.count("Index Only Scan") == 3, outbox
    assert "portal_cleanup_status_idx" in runs, runs


def test_overdue_gauge_counts_files_past_expiry_notice_and_three_intervals_not_held(fs_storage):
    # general: 30 days + 48 h notice; overdue 3 cleanup intervals (30 min) after that.
    overdue = stored_file(fs_storage, stored_at=NOW - 40 * DAY)
    held = stored_file(fs_storage, stored_at=NOW - 40 * DAY)
    stored_file(fs_storage, stored_at=NOW - 31 * DAY)  # expired, still within its notice
    held.legal_hold = True
    held.save(update_fields=["legal_hold"])

    assert values(retention_gauges(NOW)) == {"portal_retention_overdue_files": 1}
    assert overdue.status == "stored"
