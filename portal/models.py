"""The portal's domain model (SPEC §3): state and QuerySet filters; actions live in services."""

import uuid_utils.compat as uuid_compat
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def new_id():
    """A UUIDv7: time-ordered, so new rows land at the end of the primary-key index."""
    return uuid_compat.uuid7()


class TimestampedModel(models.Model):
    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    # A default rather than auto_now_add, so tests and imports can set the past.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class UploadFileQuerySet(models.QuerySet):
    def stored(self):
        return self.filter(status=UploadFile.Status.STORED)

    def not_held(self):
        return self.filter(legal_hold=False)

    def unclaimed(self, now):
        """Not being deleted by a live run (a claim past its time belongs to a dead one)."""
        return self.filter(
            Q(retention_claimed_until__isnull=True) | Q(retention_claimed_until__lt=now)
        )


class UploadFile(TimestampedModel):
    class Status(models.TextChoices):
        UPLOADING = "uploading"
        STORED = "stored"
        FAILED = "failed"
        DELETED = "deleted"
        MISSING = "missing"

    original_filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADING)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portal_files"
    )
    storage_backend = models.CharField(max_length=16, blank=True)
    storage_bucket = models.CharField(max_length=255, blank=True)
    storage_key = models.CharField(max_length=1024, blank=True)
    stored_at = models.DateTimeField(null=True, blank=True)
    # -- retention (SPEC §10); set and changed only by portal.services.retention --
    retention_policy = models.ForeignKey(
        "RetentionPolicy", null=True, blank=True, on_delete=models.PROTECT, related_name="files"
    )
    expires_at = models.DateTimeField(null=True, blank=True)  # null: kept indefinitely
    # Database defaults too, so rows inserted by plain SQL (imports, benchmarks) are valid.
    legal_hold = models.BooleanField(default=False, db_default=False)
    legal_hold_reason = models.CharField(max_length=500, blank=True, db_default="")
    legal_hold_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    legal_hold_at = models.DateTimeField(null=True, blank=True)
    expiring_notified_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set while a run deletes the file's object, so overlapping runs and a new legal
    # hold leave it alone; a claim past this time (its run died) may be taken again.
    retention_claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Set by reconcile_storage when its walk saw the final object (SPEC §11).
    storage_seen_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = UploadFileQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["status", "created_at"], name="portal_file_status_idx"),
            # notify_expiring_files: stored, not held, not yet notified, by expiry.
            models.Index(
                fields=["expires_at"],
                condition=Q(status="stored", legal_hold=False, expiring_notified_at__isnull=True),
                name="portal_file_notify_idx",
            ),
            # delete_expired_files: stored, not held, notified; walked in id order.
            models.Index(
                fields=["id"],
                condition=Q(status="stored", legal_hold=False, expiring_notified_at__isnull=False),
                name="portal_file_expired_idx",
            ),
            # apply_retention: the stored files of one class.
            models.Index(
                fields=["retention_policy"],
                condition=Q(status="stored"),
                name="portal_file_policy_idx",
            ),
            # Compliance (SPEC §11): overdue files and the next expiry, per class.
            models.Index(
                fields=["expires_at"],
                condition=Q(status="stored", legal_hold=False),
                name="portal_file_overdue_idx",
            ),
            # Files on hold, per class.
            models.Index(
                fields=["retention_policy"],
                condition=Q(status="stored", legal_hold=True),
                name="portal_file_hold_idx",
            ),
            # The monthly report: files stored in a period.
            models.Index(fields=["stored_at"], name="portal_file_stored_at_idx"),
        ]
        permissions = [("manage_legal_hold", "Can place and release legal holds")]

    def __str__(self):
        return f"{self.original_filename} ({self.status})"


class UploadSessionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=UploadSession.ACTIVE_STATUSES)

    def terminal(self):
        return self.filter(status__in=UploadSession.TERMINAL_STATUSES)

    def idle_since(self, cutoff):
        return self.filter(last_activity_at__lt=cutoff)

    def finished_before(self, cutoff):
        return self.filter(finished_at__lt=cutoff)

    def owned_by(self, user):
        return self.filter(created_by=user)


class UploadSession(TimestampedModel):
    class Status(models.TextChoices):
        INIT = "init"
        IN_PROGRESS = "in_progress"
        COMPLETE = "complete"
        FAILED = "failed"
        ABORTED = "aborted"

    ACTIVE_STATUSES = (Status.INIT, Status.IN_PROGRESS)
    TERMINAL_STATUSES = (Status.COMPLETE, Status.FAILED, Status.ABORTED)

    file = models.OneToOneField(UploadFile, on_delete=models.CASCADE, related_name="session")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portal_sessions"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INIT)
    chunk_size_bytes = models.BigIntegerField()
    total_size_bytes = models.BigIntegerField()
    total_parts = models.PositiveIntegerField()
    completed_parts = models.PositiveIntegerField(default=0)
    bytes_received = models.BigIntegerField(default=0)
    idempotency_key = models.CharField(max_length=255, blank=True)
    last_activity_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=64, blank=True)

    objects = UploadSessionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="portal_session_idempotency_uniq",
            ),
        ]
        indexes = [
            # cleanup_stale_sessions: active sessions idle since a cutoff.
            models.Index(
                fields=["last_activity_at"],
                condition=Q(status__in=["init", "in_progress"]),
                name="portal_session_active_idx",
            ),
            # cleanup_orphan_temp_parts / prune_old_failed_sessions: terminal by age.
            models.Index(
                fields=["status", "finished_at"],
                condition=Q(status__in=["complete", "failed", "aborted"]),
                name="portal_session_terminal_idx",
            ),
        ]

    def __str__(self):
        return f"session {self.pk} ({self.status})"

    @property
    def is_terminal(self):
        return self.status in self.TERMINAL_STATUSES


class UploadPart(TimestampedModel):
    # No index of its own: the (session, part_number) constraint's index starts with it.
    session = models.ForeignKey(
        UploadSession, on_delete=models.CASCADE, related_name="parts", db_index=False
    )
    part_number = models.PositiveIntegerField()
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    temp_storage_key = models.CharField(max_length=1024)
    # Set while a cleanup run deletes the part's object, so overlapping runs skip it;
    # a claim past this time (its run died) may be taken again.
    cleanup_claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "part_number"], name="portal_part_number_uniq"
            ),
            # A constraint, not unique=True: on PostgreSQL that would add a second,
            # LIKE-only index that every upload and cleanup write would pay for.
            models.UniqueConstraint(fields=["temp_storage_key"], name="portal_part_temp_key_uniq"),
        ]

    def __str__(self):
        return f"part {self.part_number} of {self.session_id}"


class ApiToken(TimestampedModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    # SHA-256 of the token; the token itself is shown once and never stored.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=12, editable=False, help_text="First characters, to tell tokens apart."
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        verbose_name_plural = "API tokens"

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self):
        return self.revoked_at is None


class CleanupRun(TimestampedModel):
    class Trigger(models.TextChoices):
        BEAT = "beat"
        COMMAND = "command"
        ADMIN = "admin"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCESS = "success"
        PARTIAL = "partial"
        FAILED = "failed"
        SKIPPED = "skipped"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    # The operator who asked for the run (admin trigger); empty for beat and commands.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="portal_cleanup_runs",
    )

    class Meta:
        permissions = [("run_cleanup", "Can run cleanup from the admin")]
        indexes = [
            models.Index(fields=["-started_at"], name="portal_cleanup_started_idx"),
            models.Index(fields=["status", "-finished_at"], name="portal_cleanup_status_idx"),
            # The admin's cleanup dashboard: the last live run (not dry, not skipped).
            models.Index(
                fields=["-started_at"],
                condition=Q(dry_run=False) & ~Q(status="skipped"),
                name="portal_cleanup_live_idx",
            ),
        ]

    def __str__(self):
        return f"cleanup {self.trigger} {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None


class CleanupDashboard(CleanupRun):
    """No table of its own: the admin's cleanup dashboard, listed on the admin index."""

    class Meta:
        proxy = True
        verbose_name = "cleanup dashboard"
        verbose_name_plural = "cleanup dashboard"
        default_permissions = ()  # seeing it takes portal.view_cleanuprun


class CleanupControl(models.Model):
    """One row: operator switches that the next cleanup run obeys without a redeploy."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    paused = models.BooleanField(default=False, help_text="Skip cleanup runs until unpaused.")
    force_dry_run = models.BooleanField(default=False, help_text="Run cleanup as a dry run only.")
    note = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "cleanup control"
        verbose_name_plural = "cleanup control"  # one row

    def __str__(self):
        return "cleanup control"

    @classmethod
    def current(cls):
        return cls.objects.get_or_create(pk=1)[0]


# Models in modules of their own (outbox SPEC §5, retention SPEC §10, tus SPEC §13),
# registered here.
from portal.outbox_models import OutboxDelivery, OutboxEvent, WebhookEndpoint  # noqa: E402, F401
from portal.retention_models import FileDeletion, RetentionChange, RetentionPolicy  # noqa: E402, F401
from portal.tus_models import TusUpload  # noqa: E402, F401
