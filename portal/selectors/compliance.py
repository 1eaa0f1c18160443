"""What an auditor reads (SPEC §11): the retention report, the deletion log, retention health.

Read-only. The report's figures per class come from ``UploadFile`` (stored, on
hold, overdue), ``FileDeletion`` (deleted) and the recorded item errors of the
``expired_files`` cleanup step (failed attempts); each is one indexed query.
"""

import csv
import io
import operator
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import reduce

from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from portal import schedule
from portal.models import CleanupRun, FileDeletion, RetentionPolicy, UploadFile

# A file is overdue once this many cleanup intervals passed after its notice period.
OVERDUE_AFTER_INTERVALS = 3
# The report names at most this many overdue files; the counts stay exact.
MAX_LISTED_FILES = 1000
DELETION_STEP = "expired_files"
NO_CLASS = ""


# -- the period of a report --------------------------------------------------------


@dataclass(frozen=True)
class Period:
    since: datetime  # inclusive
    until: datetime  # exclusive

    def as_dict(self) -> dict:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


def report_period(*, month=None, since=None, until=None, now=None) -> Period:
    """The period a report covers: ``month`` (``YYYY-MM``), or ``since`` [``until``]
    (``YYYY-MM-DD``, ``until`` exclusive, default now); by default the last full month.

    Raises ``ValueError`` naming the argument (``--month``, ``--since``, ``--until``).
    """
    now = now or timezone.now()
    if month and (since or until):
        raise ValueError("--month cannot be combined with --since/--until")
    if until and not since:
        raise ValueError("--until needs --since")
    if month:
        match = re.fullmatch(r"(\d{4})-(\d{2})", month)
        if not match or not 1 <= int(match[2]) <= 12:
            raise ValueError(f"--month must be YYYY-MM, not {month!r}")
        start = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
        return Period(start, _next_month(start))
    if since:
        start, end = parse_day(since, "--since"), parse_day(until, "--until") if until else now
        if end <= start:
            raise ValueError("--until must be after --since")
        return Period(start, end)
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    return Period((this_month - timedelta(days=1)).replace(day=1), this_month)


def _next_month(start: datetime) -> datetime:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def parse_day(value, argument: str) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        day = date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{argument} must be a date YYYY-MM-DD, not {value!r}") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- the retention report ----------------------------------------------------------


@dataclass(frozen=True)
class ClassFigures:
    code: str
    stored: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    failed: int = 0
    on_hold: int = 0
    overdue: int = 0

    @property
    def failure_rate(self) -> float:
        attempts = self.deleted + self.failed
        return round(self.failed / attempts, 4) if attempts else 0.0

    # The report's columns, in order (text, CSV and JSON alike).
    COLUMNS = (
        "code",
        "stored",
        "deleted",
        "deleted_bytes",
        "failed",
        "failure_rate",
        "on_hold",
        "overdue",
    )

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.COLUMNS}


@dataclass(frozen=True)
class RetentionReport:
    period: Period
    generated_at: datetime  # holds and overdue files are as of this time
    classes: tuple[ClassFigures, ...]
    overdue_file_ids: tuple[str, ...]  # the first MAX_LISTED_FILES, most overdue first

    @property
    def overdue(self) -> int:
        return sum(figures.overdue for figures in self.classes)

    @property
    def compliant(self) -> bool:
        return self.overdue == 0

    @property
    def status(self) -> str:
        return "COMPLIANT" if self.compliant else "NOT COMPLIANT"

    def as_dict(self) -> dict:
        return {
            "period": self.period.as_dict(),
            "generated_at": self.generated_at.isoformat(),
            "compliant": self.compliant,
            "classes": [figures.as_dict() for figures in self.classes],
            "overdue_file_ids": list(self.overdue_file_ids),
        }

    def as_text(self) -> str:
        columns = ClassFigures.COLUMNS
        rows = [columns, *(_cells(figures, columns) for figures in self.classes)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
        lines = [
            f"Retention report {self.period.since:%Y-%m-%d} to {self.period.until:%Y-%m-%d}"
            f" (exclusive), generated {self.generated_at:%Y-%m-%d %H:%M} UTC",
            "",
            *(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                for row in rows
            ),
            "",
            f"Compliance status: {self.status}",
        ]
        if self.overdue:
            lines.append(f"Overdue files ({self.overdue}):")
            lines += [f"  {file_id}" for file_id in self.overdue_file_ids]
        return "\n".join(lines) + "\n"

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        columns = ClassFigures.COLUMNS
        writer.writerow(columns)
        writer.writerows(_cells(figures, columns) for figures in self.classes)
        return out.getvalue()


def _cells(figures: ClassFigures, columns) -> tuple[str, ...]:
    values = figures.as_dict()
    return tuple(
        str(values[name] if name != "code" else values[name] or "(none)") for name in columns
    )


def retention_report(*, period: Period, now=None) -> RetentionReport:
    """Per retention class: stored, deleted, failed attempts in ``period``; on hold and
    overdue as of ``now``."""
    now = now or timezone.now()
    policies = {policy.pk: policy for policy in RetentionPolicy.objects.order_by("code")}
    codes = {pk: policy.code for pk, policy in policies.items()}
    figures: dict[str, dict] = {code: {} for code in codes.values()}

    def add(code, name, value):
        figures.setdefault(code, {})[name] = figures.get(code, {}).get(name, 0) + value

    stored = UploadFile.objects.filter(stored_at__gte=period.since, stored_at__lt=period.until)
    for policy, n in stored.values_list("retention_policy").annotate(n=Count("pk")).order_by():
        add(codes.get(policy, NO_CLASS), "stored", n)
    deletions = FileDeletion.objects.filter(
        deleted_at__gte=period.since, deleted_at__lt=period.until
    )
    for code, n, size in (
        deletions.values_list("retention_class")
        .annotate(n=Count("pk"), size=Sum("size_bytes"))
        .order_by()
    ):
        add(code, "deleted", n)
        add(code, "deleted_bytes", size or 0)
    for code, n in _failed_attempts(period, codes).items():
        add(code, "failed", n)
    held = UploadFile.objects.stored().filter(legal_hold=True)
    for policy, n in held.values_list("retention_policy").annotate(n=Count("pk")).order_by():
        add(codes.get(policy, NO_CLASS), "on_hold", n)
    overdue = overdue_files(now=now, policies=policies.values())
    for policy, n in overdue.values_list("retention_policy").annotate(n=Count("pk")).order_by():
        add(codes.get(policy, NO_CLASS), "overdue", n)
    listed = overdue.order_by("expires_at").values_list("pk", flat=True)[:MAX_LISTED_FILES]
    return RetentionReport(
        period=period,
        generated_at=now,
        classes=tuple(ClassFigures(code=code, **values) for code, values in figures.items()),
        overdue_file_ids=tuple(str(pk) for pk in listed),
    )


def _failed_attempts(period: Period, codes: dict) -> dict[str, int]:
    """Failed deletions per class, from the item errors runs in ``period`` recorded."""
    runs = CleanupRun.objects.filter(
        started_at__gte=period.since, started_at__lt=period.until, dry_run=False
    )
    file_ids = []
    for errors in runs.values_list("errors", flat=True).iterator():
        for error in errors or ():
            if error.get("step") == DELETION_STEP and _is_uuid(error.get("item")):
                file_ids.append(error["item"])
    counts: dict[str, int] = {}
    if not file_ids:
        return counts
    classes = dict(
        UploadFile.objects.filter(pk__any=list(set(file_ids))).values_list("pk", "retention_policy")
    )
    for file_id in file_ids:
        code = codes.get(classes.get(uuid.UUID(file_id)), NO_CLASS)
        counts[code] = counts.get(code, 0) + 1
    return counts


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def overdue_files(*, now=None, policies=None):
    """Stored files not on hold whose ``expires_at + notice + 3 intervals`` has passed."""
    now = now or timezone.now()
    late = OVERDUE_AFTER_INTERVALS * schedule.interval(schedule.CLEANUP)  # the one beat runs
    due = [
        Q(retention_policy=policy.pk, expires_at__lt=now - policy.notice - late)
        for policy in (policies if policies is not None else RetentionPolicy.objects.all())
    ]
    if not due:
        return UploadFile.objects.none()
    return UploadFile.objects.stored().filter(reduce(operator.or_, due), legal_hold=False)


# -- /health/cleanup's retention block ---------------------------------------------


def retention_health(*, now=None) -> dict:
    """``{overdue_files, on_hold, next_expiry_at}`` for ``/health/cleanup``."""
    stored = UploadFile.objects.stored()
    next_expiry = stored.filter(legal_hold=False).aggregate(at=Min("expires_at"))["at"]
    return {
        "overdue_files": overdue_files(now=now).count(),
        "on_hold": stored.filter(legal_hold=True).count(),
        "next_expiry_at": next_expiry.isoformat() if next_expiry else None,
    }


# -- the deletion log --------------------------------------------------------------

MAX_LOG_ENTRIES = 100


@dataclass(frozen=True)
class DeletionLog:
    """The deletions matching one query, newest first, and for a file id its current row."""

    query: dict
    entries: tuple[dict, ...]
    file_status: str | None = None  # the file's status, when asked by id and the row exists

    def as_dict(self) -> dict:
        return {"query": self.query, "file_status": self.file_status, "entries": list(self.entries)}


def deletion_log(*, file_id=None, key=None, filename=None) -> DeletionLog:
    """What was deleted, when, why, by which run or operator (SPEC §11, FM-003).

    Exactly one of ``file_id``, ``key`` (exact storage key), ``filename`` (part of the
    original name, any case). Raises ``ValueError`` naming the bad argument.
    """
    given = {name: v for name, v in (("file", file_id), ("key", key), ("filename", filename)) if v}
    if len(given) != 1:
        raise ValueError("give exactly one of --file, --key, --filename")
    deletions = FileDeletion.objects.order_by("-deleted_at")
    status = None
    if file_id:
        try:
            file_id = uuid.UUID(str(file_id))
        except ValueError:
            raise ValueError(f"--file must be a file id (UUID), not {file_id!r}") from None
        deletions = deletions.filter(file_id=file_id)
        status = UploadFile.objects.filter(pk=file_id).values_list("status", flat=True).first()
    elif key:
        deletions = deletions.filter(storage_key=key)
    else:
        deletions = deletions.filter(original_filename__icontains=filename)
    rows = list(deletions[:MAX_LOG_ENTRIES])
    runs = {
        run.pk: run
        for run in CleanupRun.objects.filter(
            pk__any=list({r.cleanup_run_id for r in rows} - {None})
        )
    }
    entries = tuple(_entry(row, runs.get(row.cleanup_run_id)) for row in rows)
    return DeletionLog(
        query={k: str(v) for k, v in given.items()}, entries=entries, file_status=status
    )


def _entry(row: FileDeletion, run: CleanupRun | None) -> dict:
    def iso(value):
        return value.isoformat() if value else None

    return {
        "file_id": str(row.file_id),
        "filename": row.original_filename,
        "storage": {
            "backend": row.storage_backend,
            "bucket": row.storage_bucket,
            "key": row.storage_key,
        },
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "retention_class": row.retention_class,
        "retention_period_days": (
            row.retention_period.total_seconds() / 86400 if row.retention_period else None
        ),
        "stored_at": iso(row.stored_at),
        "expires_at": iso(row.expires_at),
        "notified_at": iso(row.notified_at),
        "deleted_at": iso(row.deleted_at),
        "reason": row.reason,
        "note": row.note,
        "by": (
            {"run": str(row.cleanup_run_id), "trigger": run.trigger if run else None}
            if row.cleanup_run_id
            else {"operator": row.deleted_by_username}
        ),
    }
