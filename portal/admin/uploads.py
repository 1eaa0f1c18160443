from django.contrib import admin
from django.template.defaultfilters import pluralize

from portal.admin.retention import LegalHoldActionsMixin
from portal.models import ApiToken, UploadFile, UploadPart, UploadSession
from portal.services.tokens import revoke_api_token


class ReadOnlyTimestampsMixin:
    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "id", "created_at", "updated_at")


class ServiceOwnedMixin:
    """Rows only services create and change (status, counters, storage pointers, hashes):
    the admin shows them and never adds, edits or deletes one. A stray edit here would
    corrupt a record that uploads, finalize and cleanup rely on."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UploadFile)
class UploadFileAdmin(LegalHoldActionsMixin, ServiceOwnedMixin, admin.ModelAdmin):
    list_display = ("original_filename", "status", "size_bytes", "uploaded_by", "created_at")
    list_filter = ("status", "storage_backend", "legal_hold", "retention_policy")
    search_fields = ("id", "original_filename", "sha256", "storage_key", "uploaded_by__username")
    list_select_related = ("uploaded_by",)
    raw_id_fields = ("uploaded_by",)
    date_hierarchy = "created_at"


class UploadPartInline(ServiceOwnedMixin, admin.TabularInline):
    model = UploadPart
    fields = ("part_number", "size_bytes", "sha256", "temp_storage_key", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None):
        # Shown with its session to whoever may view sessions.
        return request.user.has_perm("portal.view_uploadsession")


@admin.register(UploadSession)
class UploadSessionAdmin(ServiceOwnedMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "completed_parts",
        "total_parts",
        "created_by",
        "last_activity_at",
        "failure_reason",
    )
    list_filter = ("status", "failure_reason")
    search_fields = ("id", "idempotency_key", "file__original_filename", "created_by__username")
    list_select_related = ("created_by",)
    raw_id_fields = ("file", "created_by")
    date_hierarchy = "created_at"
    inlines = [UploadPartInline]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyTimestampsMixin, admin.ModelAdmin):
    # The hash is never shown: a token is printed once by create_api_token.
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username")
    fields = ("user", "name", "prefix", "last_used_at", "revoked_at")
    # Only the name is the operator's to edit; revocation is one-way, by the action.
    readonly_fields = ("user", "prefix", "last_used_at", "revoked_at")
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False  # tokens are issued by create_api_token, which prints them once

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request, queryset):
        revoked = sum(revoke_api_token(api_token=token) for token in queryset)
        self.message_user(request, f"Revoked {revoked} token{pluralize(revoked)}.")
