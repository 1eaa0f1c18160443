"""The cleanup dashboard in the admin: tiles, 30-day charts and the settings in force.

A thin view: the figures come from ``portal.selectors.dashboard``; this module
only turns them into text and SVG. ``CleanupDashboard`` is a proxy model with no
table of its own, so the dashboard is listed on the admin index like any model;
its only page is ``admin:portal_cleanupdashboard_changelist``, linked from the
Cleanup runs page too. Seeing it takes ``portal.view_cleanuprun``; its buttons
take ``portal.run_cleanup``.
"""

from datetime import datetime

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse

from portal.admin import display
from portal.admin.charts import Series, bar_chart
from portal.admin.service_owned import ServiceOwnedMixin
from portal.models import CleanupDashboard, CleanupRun
from portal.selectors.dashboard import cleanup_dashboard

VIEW_PERMISSION = "portal.view_cleanuprun"
RUN_PERMISSION = "portal.run_cleanup"
DELETED_COLOR, FAILED_COLOR, DURATION_COLOR = "#417690", "#ba2121", "#79aec8"


@admin.register(CleanupDashboard)
class CleanupDashboardAdmin(ServiceOwnedMixin, admin.ModelAdmin):
    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(VIEW_PERMISSION)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_urls(self):
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="portal_cleanupdashboard_changelist")]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = cleanup_dashboard()
        context = {
            **self.admin_site.each_context(request),
            "title": "Cleanup dashboard",
            "opts": CleanupRun._meta,
            "data": data,
            "tiles": tiles(data),
            "charts": charts(data),
            "can_run_cleanup": request.user.has_perm(RUN_PERMISSION),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/portal/cleanup_dashboard.html", context)


def tiles(data) -> list[dict]:
    """label, value, detail, tone ("ok", "warn", "bad" or "") and maybe a link, per tile."""
    run = data.last_live_run
    if run is None:
        last = {"label": "Last live run", "value": "none yet", "detail": "", "tone": "warn"}
    else:
        who = f" by {run.requested_by}" if run.requested_by else ""
        tone = {"success": "ok", "running": ""}.get(run.status, "bad")
        last = {
            "label": "Last live run",
            "value": run.status,
            "detail": f"{display.moment(run.started_at)} · {display.duration(run.duration)} · "
            f"{run.trigger}{who}",
            "tone": tone,
            "href": reverse("admin:portal_cleanuprun_change", args=[run.id]),
        }
    switches = []
    if not data.enabled:
        switches.append("disabled (PORTAL_CLEANUP_ENABLED)")
    if data.paused:
        switches.append("paused")
    if data.dry_run_forced:
        switches.append("forced dry run")
    backlog = data.backlog
    day = data.last_24h
    return [
        last,
        {
            "label": "Next scheduled run",
            "value": display.moment(data.next_run_at) if data.next_run_at else "not scheduled",
            "detail": "from the beat schedule"
            if data.next_run_at
            else "no enabled beat schedule runs the cleanup task",
            "tone": "" if data.next_run_at else "warn",
        },
        {
            "label": "Mode",
            "value": ", ".join(switches) or "running live",
            "detail": "" if data.healthy else "no successful live run within three intervals",
            "tone": "warn" if switches or not data.healthy else "ok",
        },
        {
            "label": "Deleted, last 24 h",
            "value": f"{day.deleted}",
            "detail": f"{display.size(day.bytes_reclaimed)} reclaimed · {day.expired} expired · "
            f"{day.runs} live run{pluralize(day.runs)}",
            "tone": "",
        },
        {
            "label": "Failed, last 24 h",
            "value": f"{day.failed}",
            "detail": f"items cleanup could not delete · {failure_rate(day)} of items handled",
            "tone": "bad" if day.failed else "ok",
        },
        {
            "label": "Waiting for grace",
            "value": f"{backlog.parts} part{pluralize(backlog.parts)} · "
            f"{display.size(backlog.bytes)}",
            "detail": f"of {backlog.sessions} finished session{pluralize(backlog.sessions)}, "
            "kept for "
            f"{display.duration(backlog.grace)} after they finish",
            "tone": "",
        },
        {
            "label": "Dead webhook deliveries",
            "value": f"{data.dead_deliveries}",
            "detail": "replay them from Outbox deliveries",
            "href": reverse("admin:portal_outboxdelivery_changelist") + "?status__exact=failed",
            "tone": "bad" if data.dead_deliveries else "ok",
        },
        retention_tile(data.retention),
    ]


def retention_tile(retention: dict) -> dict:
    overdue, next_expiry = retention["overdue_files"], retention["next_expiry_at"]
    when = display.moment(datetime.fromisoformat(next_expiry)) if next_expiry else "none"
    return {
        "label": "Retention",
        "value": f"{overdue} overdue file{pluralize(overdue)}",
        "detail": f"{retention['on_hold']} on legal hold · next expiry {when}",
        "tone": "bad" if overdue else "ok",
    }


def failure_rate(totals) -> str:
    handled = totals.deleted + totals.failed
    return f"{100 * totals.failed / handled:.1f}%" if handled else "0%"


def charts(data) -> list:
    labels = [day.day.strftime("%m-%d") for day in data.days]
    counts = bar_chart(
        title="Items deleted and failed per day (live runs)",
        labels=labels,
        series=[
            Series("deleted", tuple(day.deleted for day in data.days), DELETED_COLOR),
            Series("failed", tuple(day.failed for day in data.days), FAILED_COLOR),
        ],
        format_value=lambda v: f"{v:,.0f}",
    )
    durations = bar_chart(
        title="Longest run per day",
        labels=labels,
        series=[
            Series(
                "longest run",
                tuple(
                    day.max_duration.total_seconds() * 1000 if day.max_duration else 0
                    for day in data.days
                ),
                DURATION_COLOR,
            )
        ],
        format_value=display.duration,
    )
    return [
        {
            "title": "Items deleted and failed per day",
            "svg": counts,
            "legend": [("deleted", DELETED_COLOR), ("failed", FAILED_COLOR)],
        },
        {
            "title": "Longest live run per day",
            "svg": durations,
            "legend": [("duration", DURATION_COLOR)],
        },
    ]
