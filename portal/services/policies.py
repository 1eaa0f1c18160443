"""Retention policies (SPEC §10): resolve a class, change one with an audit record, re-apply one.

A policy change applies to files stored afterwards; ``apply_retention`` is the
explicit step that recomputes ``expires_at`` of a class's stored files.
"""

from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Q, Value
from django.utils import timezone
from django.utils.duration import duration_iso_string

from portal import conf
from portal.exceptions import InvalidRetentionClass, RetentionRefused
from portal.logs import get_logger
from portal.models import RetentionChange, RetentionPolicy, UploadFile

log = get_logger(__name__)

POLICY_FIELDS = ("code", "name", "retention", "notice", "is_default")


def resolve_policy(code: str | None) -> RetentionPolicy | None:
    """The policy ``code`` names, or the default one when ``code`` is None.

    With no policy at all (a host that removed them), a file gets no class and is kept.
    """
    if code is None:
        policy = RetentionPolicy.objects.filter(is_default=True).first()
        if policy is None:
            log.warning("retention.no_default_policy")
        return policy
    if not isinstance(code, str):
        raise InvalidRetentionClass("retention_class must be a string.")
    policy = RetentionPolicy.objects.filter(code=code).first()
    if policy is None:
        raise InvalidRetentionClass(f"No retention class {code[:60]!r}.")
    return policy


def expiry_for(policy: RetentionPolicy | None, stored_at):
    """When a file stored at ``stored_at`` under ``policy`` expires; None: kept indefinitely."""
    if policy is None or policy.retention is None:
        return None
    return stored_at + policy.retention


def check_policy_change(policy: RetentionPolicy) -> None:
    """Refuse a change that would leave no default policy (the default moves, never vanishes)."""
    if policy.pk is None or policy.is_default:
        return
    if RetentionPolicy.objects.filter(pk=policy.pk, is_default=True).exists():
        raise RetentionRefused(
            "Exactly one policy is the default: make another policy the default instead.",
            code="default_required",
        )


def save_policy(*, policy: RetentionPolicy, user=None, now=None) -> RetentionPolicy:
    """Create or change ``policy`` and record who changed what, from which value to which.

    Making it the default takes the default from the policy that had it (recorded too).
    """
    now = now or timezone.now()
    check_policy_change(policy)
    with transaction.atomic():
        old = (
            RetentionPolicy.objects.select_for_update().filter(pk=policy.pk).first()
            if policy.pk
            else None
        )
        if policy.is_default:
            for previous in RetentionPolicy.objects.select_for_update().filter(is_default=True):
                if previous.pk != policy.pk:
                    previous.is_default = False
                    previous.save(update_fields=["is_default", "updated_at"])
                    _record(previous, {"is_default": (True, False)}, user=user, now=now)
        if old is None:
            policy.created_at = now
        policy.save()
        changes = {
            name: (getattr(old, name) if old else None, getattr(policy, name))
            for name in POLICY_FIELDS
            if old is None or getattr(old, name) != getattr(policy, name)
        }
        if changes:
            _record(policy, changes, user=user, now=now)
    log.info("retention.policy_changed", policy=policy.code, fields=sorted(changes))
    return policy


def _record(policy, changes: dict, *, user, now) -> None:
    RetentionChange.objects.create(
        action=RetentionChange.Action.POLICY_CHANGED,
        policy=policy,
        changes={name: {"old": _plain(a), "new": _plain(b)} for name, (a, b) in changes.items()},
        changed_by=user,
        changed_by_username=user.get_username() if user else "",
        created_at=now,
    )


def _plain(value):
    return duration_iso_string(value) if isinstance(value, timedelta) else value


# -- apply_retention --------------------------------------------------------------


@dataclass(frozen=True)
class ApplyRetentionResult:
    policy: str
    files: int = 0  # stored files of the class
    earlier: int = 0  # expiry moves earlier (or from indefinite to a date)
    later: int = 0  # expiry moves later (or to indefinite)
    due: int = 0  # reach their notice time with the change, not before it
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def apply_retention(*, code: str, dry_run=None, now=None) -> ApplyRetentionResult:
    """Recompute ``expires_at`` (stored_at + retention) of the class's stored files.

    The counts are read in the transaction that makes the change, by the same filters.
    A file already notified keeps its notice: deletion still waits ``notice`` after it.
    """
    now = now or timezone.now()
    dry_run = conf.cleanup_dry_run() if dry_run is None else dry_run
    policy = resolve_policy(code)
    files = UploadFile.objects.stored().filter(retention_policy=policy, stored_at__isnull=False)
    if policy.retention is None:
        new = Value(None, output_field=DateTimeField())
        earlier, later, due = Q(pk__in=[]), Q(expires_at__isnull=False), Q(pk__in=[])
    else:
        new = ExpressionWrapper(F("stored_at") + Value(policy.retention), DateTimeField())
        notice_at = now + policy.notice
        earlier = Q(expires_at__isnull=True) | Q(expires_at__gt=new)
        later = Q(expires_at__lt=new)
        newly_due = Q(new_expires_at__lte=notice_at) & (
            Q(expires_at__isnull=True) | Q(expires_at__gt=notice_at)
        )
        due = newly_due & Q(legal_hold=False, expiring_notified_at__isnull=True)
    with transaction.atomic():
        counts = files.annotate(new_expires_at=new).aggregate(
            files=Count("pk"),
            earlier=Count("pk", filter=earlier),
            later=Count("pk", filter=later),
            due=Count("pk", filter=due),
        )
        if not dry_run:
            files.update(expires_at=new, updated_at=now)
    result = ApplyRetentionResult(policy=policy.code, dry_run=dry_run, **counts)
    log.info("retention.applied", **result.as_dict())
    return result
