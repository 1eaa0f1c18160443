"""Legal hold (SPEC §10): a held file is never notified nor deleted; every change is audited.

Releasing a hold restarts the file's notice: a file already past its notice time is
notified again by the next cleanup run and deleted only ``notice`` after that.
"""

from dataclasses import asdict, dataclass

from django.db import transaction
from django.utils import timezone

from portal.exceptions import RetentionRefused
from portal.logs import get_logger
from portal.models import RetentionChange, UploadFile
from portal.services.retention import parse_file_ids

log = get_logger(__name__)

MAX_REASON_LENGTH = RetentionChange._meta.get_field("reason").max_length


@dataclass(frozen=True)
class HoldResult:
    changed: int = 0  # files whose hold this call placed or released
    unchanged: int = 0  # already in the state asked for

    def as_dict(self) -> dict:
        return asdict(self)


def set_legal_hold(*, file_ids, reason: str, user=None, now=None) -> HoldResult:
    """Place a hold on stored files. All or nothing: an unknown, unstored or
    being-deleted file refuses the whole call."""
    reason = (reason or "").strip()
    if not reason:
        raise RetentionRefused("A legal hold needs a reason.", code="reason_required")
    if len(reason) > MAX_REASON_LENGTH:
        raise RetentionRefused(
            f"The reason is longer than {MAX_REASON_LENGTH} characters.", code="reason_too_long"
        )
    return _change(file_ids, hold=True, reason=reason, user=user, now=now or timezone.now())


def release_legal_hold(*, file_ids, user=None, now=None, reason: str = "") -> HoldResult:
    """Release holds. Released files get a fresh notice before they can be deleted."""
    return _change(
        file_ids,
        hold=False,
        reason=(reason or "").strip()[:MAX_REASON_LENGTH],
        user=user,
        now=now or timezone.now(),
    )


def _change(file_ids, *, hold: bool, reason: str, user, now) -> HoldResult:
    ids = parse_file_ids(file_ids)
    with transaction.atomic():
        files = list(UploadFile.objects.select_for_update().filter(pk__any=ids).order_by("pk"))
        _ensure_all(ids, files, hold=hold, now=now)
        to_change = [file for file in files if file.legal_hold != hold]
        values = (
            {"legal_hold": True, "legal_hold_reason": reason, "legal_hold_at": now}
            if hold
            else {"legal_hold": False, "legal_hold_reason": "", "legal_hold_at": None}
        )
        changed_ids = [file.pk for file in to_change]
        UploadFile.objects.filter(pk__any=changed_ids).update(
            **values,
            legal_hold_by=user if hold else None,
            # A release restarts the notice: deletion waits `notice` after the new one.
            **({} if hold else {"expiring_notified_at": None}),
            updated_at=now,
        )
        RetentionChange.objects.bulk_create(
            RetentionChange(
                action=RetentionChange.Action.HOLD_SET
                if hold
                else RetentionChange.Action.HOLD_RELEASED,
                file=file,
                reason=reason,
                changes={
                    "legal_hold": {"old": file.legal_hold, "new": hold},
                    "legal_hold_reason": {
                        "old": file.legal_hold_reason,
                        "new": values["legal_hold_reason"],
                    },
                },
                changed_by=user,
                changed_by_username=user.get_username() if user else "",
                created_at=now,
            )
            for file in to_change
        )
    log.info(
        "retention.hold_set" if hold else "retention.hold_released",
        file_ids=[str(pk) for pk in changed_ids],
        reason=reason,
        user=user.get_username() if user else "",
    )
    return HoldResult(changed=len(to_change), unchanged=len(files) - len(to_change))


def _ensure_all(ids, files, *, hold: bool, now) -> None:
    found = {file.pk for file in files}
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise RetentionRefused(f"No such files: {', '.join(missing)}.", code="not_found")
    if not hold:
        return
    unstored = [str(file.pk) for file in files if file.status != UploadFile.Status.STORED]
    if unstored:
        raise RetentionRefused(
            f"Only stored files can be held; not stored: {', '.join(unstored)}.",
            code="not_stored",
        )
    busy = [
        str(file.pk)
        for file in files
        if file.retention_claimed_until is not None and file.retention_claimed_until >= now
    ]
    if busy:
        raise RetentionRefused(
            f"Being deleted by a cleanup run right now: {', '.join(busy)}.",
            code="deletion_in_progress",
        )
