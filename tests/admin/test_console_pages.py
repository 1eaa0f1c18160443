"""The operator console's pages: the dashboard, run pages and the lists, as rendered HTML."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.admin import display
from portal.admin.dashboard import failure_rate
from portal.models import CleanupRun, UploadSession
from portal.selectors.dashboard import Totals
from portal.services.cleanup import run_cleanup
from tests.factories import make_session, make_user
from tests.retention.helpers import DAY, stored_file

pytestmark = pytest.mark.django_db
DASHBOARD = "admin:portal_cleanupdashboard_changelist"


def staff(*codenames):
    user = make_user(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client():
    client = Client()
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


def test_dashboard_shows_tiles_charts_settings_and_buttons(superuser_client, fs_storage):
    make_session(
        status=UploadSession.Status.COMPLETE,
        parts=2,
        finished_at=timezone.now() - timedelta(minutes=5),
    )
    run_cleanup(trigger="command")

    page = superuser_client.get(reverse(DASHBOARD)).content.decode()

    for label in (
        "Last live run",
        "Next scheduled run",
        "Deleted, last 24 h",
        "Failed, last 24 h",
        "Waiting for grace",
        "Dead webhook deliveries",
        "Retention",
        "Settings in force",
    ):
        assert label in page
    assert "2 parts" in page
    assert page.count('<svg class="portal-chart"') == 2
    assert 'src="http' not in page and 'href="http' not in page  # nothing from a CDN
    assert "Run cleanup now" in page and "Dry run" in page
    assert "PORTAL_CLEANUP_BATCH_SIZE" in page
    assert "/admin/portal/outboxdelivery/?status__exact=failed" in page


def test_dashboard_needs_the_view_permission_and_hides_buttons_without_run():
    assert staff().get(reverse(DASHBOARD)).status_code == 403
    page = staff("view_cleanuprun").get(reverse(DASHBOARD))
    assert page.status_code == 200
    assert "Run cleanup now" not in page.content.decode()


def test_dashboard_is_linked_from_the_index_and_the_runs_page(superuser_client):
    url = reverse(DASHBOARD)

    assert url in superuser_client.get(reverse("admin:index")).content.decode()
    assert (
        url in superuser_client.get(reverse("admin:portal_cleanuprun_changelist")).content.decode()
    )
    assert url not in staff().get(reverse("admin:index")).content.decode()


def test_run_page_has_a_step_table_readable_errors_and_the_trigger(superuser_client):
    started = timezone.now()
    run = CleanupRun.objects.create(
        trigger="admin",
        status="partial",
        started_at=started,
        finished_at=started + timedelta(seconds=75),
        counts={
            "orphan_temp_parts": {
                "deleted": 1200,
                "failed": 1,
                "foreign": 2,
                "bytes_reclaimed": 3 * 1024**2,
                "duration_ms": 4321,
            },
            "total": {"expired": 0, "deleted": 1200, "failed": 1},
        },
        errors=[{"step": "orphan_temp_parts", "item": "tmp/ab/x.part", "error": "AccessDenied"}],
    )

    page = superuser_client.get(
        reverse("admin:portal_cleanuprun_change", args=[run.pk])
    ).content.decode()

    assert '<table class="portal-steps">' in page
    assert "orphan_temp_parts" in page and "1,200" in page and "3.0\xa0MB" in page
    assert "4.3 s" in page  # the step's duration
    assert "1 min 15 s" in page  # the run's, also in the total row
    assert "tmp/ab/x.part" in page and "AccessDenied" in page and "[{" not in page
    assert "admin" in page and "portal-mode-live" in page


def test_runs_list_has_seconds_humanized_durations_and_a_neutral_mode(superuser_client):
    started = timezone.now().replace(microsecond=0)
    CleanupRun.objects.create(
        trigger="beat",
        status="success",
        started_at=started,
        finished_at=started + timedelta(milliseconds=30),
    )

    page = superuser_client.get(reverse("admin:portal_cleanuprun_changelist")).content.decode()

    assert display.moment(started) in page
    assert "30 ms" in page and "0:00:00.030000" not in page
    assert "portal-mode-live" in page and "icon-no.svg" not in page


def test_session_list_shows_the_filename(superuser_client):
    session = make_session()

    page = superuser_client.get(reverse("admin:portal_uploadsession_changelist")).content.decode()

    assert session.file.original_filename in page


def test_aborted_uploads_file_says_aborted_not_failed(superuser_client):
    aborted = make_session(status=UploadSession.Status.ABORTED)
    aborted.file.status = "failed"  # what the abort service sets
    aborted.file.save()
    expired = make_session(status=UploadSession.Status.FAILED, failure_reason="expired")
    expired.file.status = "failed"
    expired.file.save()

    page = superuser_client.get(reverse("admin:portal_uploadfile_changelist")).content.decode()

    assert '<span class="portal-status portal-status-aborted">aborted</span>' in page
    assert "failed (expired)" in page


def test_model_names_read_right(superuser_client):
    page = superuser_client.get(reverse("admin:index")).content.decode()

    assert "API tokens" in page and "Api tokens" not in page
    assert "Cleanup control<" in page and "Cleanup controls" not in page


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (30, "30 ms"),
        (timedelta(seconds=1.24), "1.2 s"),
        (timedelta(minutes=4, seconds=5), "4 min 05 s"),
        (timedelta(hours=2, minutes=3), "2 h 03 min"),
    ],
)
def test_durations_read_as_people_say_them(value, text):
    assert display.duration(value) == text


def test_failure_rate_is_the_share_of_items_that_failed():
    assert failure_rate(Totals(deleted=3, failed=1)) == "25.0%"
    assert failure_rate(Totals()) == "0%"


def test_retention_tile_shows_overdue_on_hold_and_the_next_expiry(superuser_client, fs_storage):
    now = timezone.now()
    stored_file(fs_storage, stored_at=now - 40 * DAY)  # general: past 30 days + notice
    held = stored_file(fs_storage, stored_at=now - 10 * DAY)
    held.legal_hold = True
    held.save(update_fields=["legal_hold"])

    page = superuser_client.get(reverse(DASHBOARD)).content.decode()

    assert "1 overdue file" in page
    assert "1 on legal hold" in page
    assert "next expiry 20" in page  # a date, not "none"
