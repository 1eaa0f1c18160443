"""retention_report (text, JSON, CSV, periods, exit status) and the admin report page."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from portal.models import CleanupRun, UploadFile
from portal.selectors.compliance import report_period, retention_health, retention_report
from portal.services.legal_hold import set_legal_hold
from portal.services.retention import erase_file
from tests.factories import make_user
from tests.retention.helpers import stored_file

pytestmark = pytest.mark.django_db


def report(*args) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("retention_report", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def this_month() -> str:
    return f"{timezone.now():%Y-%m}"


def test_an_overdue_file_makes_the_report_not_compliant(storage):
    now = timezone.now()
    # general keeps 30 days, notice 48 h: stored 40 days ago, it is long overdue.
    overdue = stored_file(storage, stored_at=now - timedelta(days=40))
    fresh = stored_file(storage, stored_at=now - timedelta(days=1))
    UploadFile.objects.filter(pk=fresh.pk).update(stored_at=now.replace(day=1))

    text, error = report("--since", f"{now - timedelta(days=60):%Y-%m-%d}")

    assert error is not None and "NOT COMPLIANT: 1 overdue" in str(error)
    assert "Compliance status: NOT COMPLIANT" in text
    assert str(overdue.pk) in text and str(fresh.pk) not in text


def test_the_json_report_has_the_spec_shape_and_the_figures(storage):
    now = timezone.now()
    user = make_user()
    deleted = stored_file(storage, stored_at=now - timedelta(days=3))
    erase_file(file_id=deleted.pk, reason="asked by the owner", actor=user)
    held = stored_file(storage, code="financial", stored_at=now - timedelta(days=400))
    set_legal_hold(file_ids=[held.pk], reason="litigation", user=user)
    failing = stored_file(storage, code="financial", stored_at=now - timedelta(days=2))
    CleanupRun.objects.create(
        trigger="beat",
        started_at=now,
        status="partial",
        errors=[{"step": "expired_files", "item": str(failing.pk), "error": "storage down"}],
    )

    since = f"{now - timedelta(days=5):%Y-%m-%d}"
    text, error = report("--since", since, "--format", "json")

    assert error is None  # the held file is past expiry but on hold: not overdue
    body = json.loads(text)
    assert set(body) == {"period", "generated_at", "compliant", "classes", "overdue_file_ids"}
    assert body["compliant"] is True and body["overdue_file_ids"] == []
    classes = {row["code"]: row for row in body["classes"]}
    assert set(classes) >= {"system-testing", "general", "financial", "legal", "medical"}
    assert set(classes["general"]) == {
        "code", "stored", "deleted", "deleted_bytes", "failed", "failure_rate", "on_hold",
        "overdue",
    }  # fmt: skip
    general, financial = classes["general"], classes["financial"]
    assert (general["deleted"], general["deleted_bytes"]) == (1, deleted.size_bytes)
    assert (financial["on_hold"], financial["failed"], financial["failure_rate"]) == (1, 1, 1.0)
    # Stored in the period: the erased file and the failing one; not the held one.
    assert (general["stored"], financial["stored"]) == (1, 1)


def test_the_csv_report_has_one_row_per_class(fs_storage):
    text, error = report("--month", this_month(), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert error is None
    assert rows[0].keys() == {
        "code", "stored", "deleted", "deleted_bytes", "failed", "failure_rate", "on_hold",
        "overdue",
    }  # fmt: skip
    assert {row["code"] for row in rows} >= {"general", "legal"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "--month must be YYYY-MM"),
        (["--since", "yesterday"], "--since must be a date"),
        (["--until", "2026-01-01"], "--until needs --since"),
        (["--month", "2026-01", "--since", "2026-01-01"], "--month cannot be combined"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "--until must be after --since"),
    ],
)
def test_a_bad_period_is_refused_naming_the_argument(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("retention_report", *args, stdout=io.StringIO())


def test_the_default_period_is_the_last_full_month():
    now = datetime(2026, 3, 15, 9, tzinfo=UTC)
    period = report_period(now=now)
    assert (period.since, period.until) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    december = report_period(month="2025-12")
    assert december.until == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_deletion_outside_the_period_is_not_counted(fs_storage):
    file = stored_file(fs_storage, stored_at=timezone.now() - timedelta(days=3))
    erase_file(file_id=file.pk, reason="asked", actor=make_user())
    last_year = report_period(month=f"{timezone.now().year - 1}-06")
    general = {row.code: row for row in retention_report(period=last_year).classes}["general"]
    assert (general.deleted, general.stored) == (0, 0)


def test_retention_health_counts_overdue_held_and_the_next_expiry(fs_storage):
    now = timezone.now()
    stored_file(fs_storage, stored_at=now - timedelta(days=40))
    held = stored_file(fs_storage, stored_at=now - timedelta(days=10))
    set_legal_hold(file_ids=[held.pk], reason="audit", user=make_user())
    soon = stored_file(fs_storage, stored_at=now - timedelta(days=5))

    health = retention_health(now=now)

    overdue = UploadFile.objects.exclude(pk__in=[held.pk, soon.pk]).get()
    assert health == {
        "overdue_files": 1,
        "on_hold": 1,
        "next_expiry_at": overdue.expires_at.isoformat(),
    }
    assert soon.expires_at > overdue.expires_at


def test_the_admin_report_page_prints_and_downloads_csv(client, fs_storage):
    stored_file(fs_storage, stored_at=timezone.now() - timedelta(days=40))
    client.force_login(make_user(is_staff=True, is_superuser=True))
    url = reverse("admin:portal_filedeletion_report")

    page = client.get(url, {"month": this_month()})
    assert page.status_code == 200
    html = page.content.decode()
    assert "NOT COMPLIANT" in html and "window.print()" in html

    download = client.get(url, {"month": this_month(), "format": "csv"})
    assert download["Content-Type"] == "text/csv"
    assert download.content.decode().startswith("code,stored,deleted")

    bad = client.get(url, {"month": "2026-13"})
    assert bad.status_code == 200 and "month must be YYYY-MM" in bad.content.decode()


def test_the_admin_report_page_needs_the_view_permission(client):
    client.force_login(make_user(is_staff=True))
    assert client.get(reverse("admin:portal_filedeletion_report")).status_code == 403


def test_health_cleanup_carries_the_retention_block(client, fs_storage):
    stored_file(fs_storage, stored_at=timezone.now() - timedelta(days=40))
    body = client.get("/health/cleanup").json()
    assert body["retention"]["overdue_files"] == 1 and body["retention"]["on_hold"] == 0
    assert body["retention"]["next_expiry_at"] is not None
