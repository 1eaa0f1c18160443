"""Retention of stored files (SPEC §10): policies, the retention fields of UploadFile, the
audit of operator changes, proof of deletion; seeds the runbook's classes.

Files stored before this migration get no class and no expiry: they are kept until an
operator gives them one. The permission ``portal.manage_legal_hold`` comes with it.
"""

import datetime

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import portal.models

# The cleanup runbook's purpose codes; "general" is the default.
RUNBOOK_CLASSES = [
    ("system-testing", "System testing", datetime.timedelta(hours=24), False),
    ("general", "General", datetime.timedelta(days=30), True),
    ("financial", "Financial", datetime.timedelta(days=365), False),
    ("legal", "Legal", datetime.timedelta(days=7 * 365), False),
    ("medical", "Medical", datetime.timedelta(days=10 * 365), False),
]


def seed_policies(apps, schema_editor):
    RetentionPolicy = apps.get_model("portal", "RetentionPolicy")
    for code, name, retention, is_default in RUNBOOK_CLASSES:
        RetentionPolicy.objects.get_or_create(
            code=code, defaults={"name": name, "retention": retention, "is_default": is_default}
        )


def unseed_policies(apps, schema_editor):
    RetentionPolicy = apps.get_model("portal", "RetentionPolicy")
    RetentionPolicy.objects.filter(code__in=[code for code, *_ in RUNBOOK_CLASSES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0004_cleanup_ownership"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="uploadfile",
            options={"permissions": [("manage_legal_hold", "Can place and release legal holds")]},
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="deleted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="expiring_notified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="legal_hold",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="legal_hold_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="legal_hold_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="legal_hold_reason",
            field=models.CharField(blank=True, db_default="", max_length=500),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="retention_claimed_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name="uploadfile",
            name="status",
            field=models.CharField(
                choices=[
                    ("uploading", "Uploading"),
                    ("stored", "Stored"),
                    ("failed", "Failed"),
                    ("deleted", "Deleted"),
                    ("missing", "Missing"),
                ],
                default="uploading",
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="FileDeletion",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=portal.models.new_id,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("file_id", models.UUIDField(unique=True)),
                ("original_filename", models.CharField(max_length=255)),
                ("storage_backend", models.CharField(max_length=16)),
                ("storage_bucket", models.CharField(blank=True, max_length=255)),
                ("storage_key", models.CharField(max_length=1024)),
                ("size_bytes", models.BigIntegerField()),
                ("sha256", models.CharField(blank=True, max_length=64)),
                ("retention_class", models.CharField(blank=True, max_length=50)),
                ("retention_period", models.DurationField(blank=True, null=True)),
                ("stored_at", models.DateTimeField(blank=True, null=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("notified_at", models.DateTimeField(blank=True, null=True)),
                ("deleted_at", models.DateTimeField()),
                (
                    "reason",
                    models.CharField(
                        choices=[
                            ("retention_expired", "Retention Expired"),
                            ("erasure_request", "Erasure Request"),
                        ],
                        max_length=32,
                    ),
                ),
                ("note", models.CharField(blank=True, max_length=500)),
                ("cleanup_run_id", models.UUIDField(blank=True, null=True)),
                ("deleted_by_username", models.CharField(blank=True, max_length=150)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["-deleted_at"], name="portal_deletion_time_idx"),
                    models.Index(fields=["storage_key"], name="portal_deletion_key_idx"),
                ],
            },
        ),
        migrations.CreateModel(
            name="RetentionPolicy",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=portal.models.new_id,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("code", models.SlugField(unique=True)),
                ("name", models.CharField(max_length=100)),
                (
                    "retention",
                    models.DurationField(
                        blank=True,
                        help_text="How long a stored file is kept; empty: indefinitely.",
                        null=True,
                    ),
                ),
                (
                    "notice",
                    models.DurationField(
                        default=datetime.timedelta(days=2),
                        help_text="How long before deletion file.expiring is sent; deletion waits this long after the notice.",
                    ),
                ),
                (
                    "is_default",
                    models.BooleanField(
                        default=False,
                        help_text="The class of uploads that name none (exactly one).",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "retention policies",
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("is_default", True)),
                        fields=("is_default",),
                        name="portal_policy_one_default",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="RetentionChange",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=portal.models.new_id,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("policy_changed", "Policy Changed"),
                            ("hold_set", "Hold Set"),
                            ("hold_released", "Hold Released"),
                        ],
                        max_length=32,
                    ),
                ),
                ("changes", models.JSONField(default=dict)),
                ("reason", models.CharField(blank=True, max_length=500)),
                ("changed_by_username", models.CharField(blank=True, max_length=150)),
                (
                    "changed_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "file",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="portal.uploadfile",
                    ),
                ),
                (
                    "policy",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="changes",
                        to="portal.retentionpolicy",
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="retention_policy",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="files",
                to="portal.retentionpolicy",
            ),
        ),
        migrations.AddIndex(
            model_name="uploadfile",
            index=models.Index(
                condition=models.Q(
                    ("expiring_notified_at__isnull", True),
                    ("legal_hold", False),
                    ("status", "stored"),
                ),
                fields=["expires_at"],
                name="portal_file_notify_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="uploadfile",
            index=models.Index(
                condition=models.Q(
                    ("expiring_notified_at__isnull", False),
                    ("legal_hold", False),
                    ("status", "stored"),
                ),
                fields=["id"],
                name="portal_file_expired_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="uploadfile",
            index=models.Index(
                condition=models.Q(("status", "stored")),
                fields=["retention_policy"],
                name="portal_file_policy_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="retentionchange",
            index=models.Index(fields=["-created_at"], name="portal_retention_change_idx"),
        ),
        migrations.RunPython(seed_policies, unseed_policies),
    ]
