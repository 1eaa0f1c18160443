"""Cleanup in the admin: the run history (read-only), run buttons, and the operator switches."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from portal.admin.lists import CleanupControlColumns, CleanupRunColumns
from portal.admin.service_owned import ServiceOwnedMixin
from portal.models import CleanupControl, CleanupRun
from portal.selectors.cleanup import effective_settings
from portal.tasks import portal_cleanup_task

RUN_PERMISSION = "portal.run_cleanup"


@admin.register(CleanupRun)
class CleanupRunAdmin(CleanupRunColumns, ServiceOwnedMixin, admin.ModelAdmin):
    list_display = ("started", "triggered_by", "mode", "run_status", "totals", "run_duration")
    list_select_related = ("requested_by",)
    ordering = ("-started_at",)
    list_filter = ("status", "trigger", "dry_run")
    date_hierarchy = "started_at"
    fields = (
        "trigger",
        "requester",
        "mode",
        "run_status",
        "started",
        "finished",
        "run_duration",
        "steps",
        "error_list",
    )
    readonly_fields = fields

    @admin.display(description="expired / deleted / failed")
    def totals(self, run):
        total = run.counts.get("total")
        return f"{total['expired']} / {total['deleted']} / {total['failed']}" if total else None

    def get_urls(self):
        run = self.admin_site.admin_view(self.run_view)
        return [
            path("run/", run, name="portal_cleanuprun_run"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_run_cleanup": request.user.has_perm(RUN_PERMISSION),
            "cleanup_settings": effective_settings(),
        }
        return super().changelist_view(request, extra_context=extra_context)

    @method_decorator(require_POST)
    @method_decorator(csrf_protect)
    def run_view(self, request):
        if not request.user.has_perm(RUN_PERMISSION):
            raise PermissionDenied
        dry_run = request.POST.get("dry_run") == "1"
        # Queued, not run here: a whole cleanup does not belong in a web request.
        portal_cleanup_task.delay(trigger="admin", dry_run=dry_run or None, user_id=request.user.pk)
        kind = "A dry run" if dry_run else "A cleanup run"
        self.message_user(
            request,
            f"{kind} was queued; it appears in this list when a worker has taken it.",
            level=messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:portal_cleanuprun_changelist"))


@admin.register(CleanupControl)
class CleanupControlAdmin(CleanupControlColumns, admin.ModelAdmin):
    """One row: pause cleanup or force dry runs; the next run obeys."""

    list_display = ("__str__", "paused", "force_dry_run", "note", "updated")
    list_editable = ("paused", "force_dry_run")
    fields = ("paused", "force_dry_run", "note")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        CleanupControl.current()  # the one row exists, ready to edit
        return super().changelist_view(request, extra_context=extra_context)
