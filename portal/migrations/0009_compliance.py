"""Compliance (SPEC §11): reconcile_storage's seen marker; indexes of the report and health."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0008_dashboard_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="uploadfile",
            name="storage_seen_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="uploadfile",
            index=models.Index(
                condition=models.Q(("legal_hold", False), ("status", "stored")),
                fields=["expires_at"],
                name="portal_file_overdue_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="uploadfile",
            index=models.Index(
                condition=models.Q(("legal_hold", True), ("status", "stored")),
                fields=["retention_policy"],
                name="portal_file_hold_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="uploadfile",
            index=models.Index(fields=["stored_at"], name="portal_file_stored_at_idx"),
        ),
    ]
