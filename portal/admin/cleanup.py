from django.contrib import admin

from portal.models import CleanupControl, CleanupRun


@admin.register(CleanupRun)
class CleanupRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "trigger", "dry_run", "status", "finished_at")
    list_filter = ("status", "trigger", "dry_run")
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CleanupControl)
class CleanupControlAdmin(admin.ModelAdmin):
    list_display = ("__str__", "paused", "force_dry_run", "updated_at")
