"""Retention models (SPEC §10): classes, the audit of operator changes, proof of deletion.

Imported by ``portal.models``, which is where Django finds them. The retention
fields of ``UploadFile`` live on that model.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.models import TimestampedModel, UploadFile


class RetentionPolicy(TimestampedModel):
    """A retention class: how long its stored files are kept, how early the notice goes out."""

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    retention = models.DurationField(
        null=True, blank=True, help_text="How long a stored file is kept; empty: indefinitely."
    )
    notice = models.DurationField(
        default=timedelta(hours=48),
        help_text="How long before deletion file.expiring is sent; deletion waits this long "
        "after the notice.",
    )
    is_default = models.BooleanField(
        default=False, help_text="The class of uploads that name none (exactly one)."
    )

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="portal_policy_one_default",
            ),
        ]

    def __str__(self):
        return self.code


class RetentionChange(TimestampedModel):
    """Audit of one operator change: a policy created or edited, a hold placed or released.

    ``changes`` maps each changed field to ``{"old": ..., "new": ...}``.
    """

    class Action(models.TextChoices):
        POLICY_CHANGED = "policy_changed"
        HOLD_SET = "hold_set"
        HOLD_RELEASED = "hold_released"

    action = models.CharField(max_length=32, choices=Action.choices)
    policy = models.ForeignKey(
        RetentionPolicy, null=True, blank=True, on_delete=models.CASCADE, related_name="changes"
    )
    file = models.ForeignKey(
        UploadFile, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    changes = models.JSONField(default=dict)
    reason = models.CharField(max_length=500, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the record outlives the user.
    changed_by_username = models.CharField(max_length=150, blank=True)

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="portal_retention_change_idx")]

    def __str__(self):
        return f"{self.action} {self.created_at:%Y-%m-%d %H:%M}"


class FileDeletion(TimestampedModel):
    """Proof of one stored file's disposition. Never pruned; no foreign key to the file."""

    class Reason(models.TextChoices):
        RETENTION_EXPIRED = "retention_expired"
        ERASURE_REQUEST = "erasure_request"

    file_id = models.UUIDField(unique=True)
    original_filename = models.CharField(max_length=255)
    storage_backend = models.CharField(max_length=16)
    storage_bucket = models.CharField(max_length=255, blank=True)
    storage_key = models.CharField(max_length=1024)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, blank=True)
    retention_class = models.CharField(max_length=50, blank=True)
    retention_period = models.DurationField(null=True, blank=True)
    stored_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField()
    reason = models.CharField(max_length=32, choices=Reason.choices)
    note = models.CharField(max_length=500, blank=True)
    # Plain values, not foreign keys: the proof outlives the run and the user rows.
    cleanup_run_id = models.UUIDField(null=True, blank=True)
    deleted_by_username = models.CharField(max_length=150, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-deleted_at"], name="portal_deletion_time_idx"),
            models.Index(fields=["storage_key"], name="portal_deletion_key_idx"),
        ]

    def __str__(self):
        return f"{self.original_filename} deleted {self.deleted_at:%Y-%m-%d} ({self.reason})"
