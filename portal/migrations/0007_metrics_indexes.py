"""Partial indexes for the scrape-time outbox gauges (``portal.metrics.gauges``).

``portal_outbox_oldest_pending_age_seconds`` reads the first entry of the pending
index and ``portal_outbox_dead`` counts the dead one: both stay small (rows leave
them when delivered or replayed), so a scrape costs the same at 1M deliveries as
at 100. EXPLAIN: tests/metrics/test_gauges.py.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0004_cleanup_ownership"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="outboxdelivery",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["created_at"],
                name="portal_delivery_pending_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="outboxdelivery",
            index=models.Index(
                condition=models.Q(("status", "failed")),
                fields=["created_at"],
                name="portal_delivery_dead_idx",
            ),
        ),
    ]
