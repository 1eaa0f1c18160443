from django.contrib import admin
from django.template.defaultfilters import pluralize

from portal.admin.lists import ApiTokenColumns, UploadFileColumns, UploadSessionColumns
from portal.admin.retention import LegalHoldActionsMixin
from portal.admin.service_owned import ServiceOwnedMixin
from portal.models import ApiToken, UploadFile, UploadPart, UploadSession
from portal.services.tokens import revoke_api_token


class ReadOnlyTimestampsMixin:
    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "id", "created_at", "updated_at")


@admin.register(UploadFile)
class UploadFileAdmin(
    LegalHoldActionsMixin, UploadFileColumns, ServiceOwnedMixin, admin.ModelAdmin
):
    list_display = ("original_filename", "file_status", "size", "uploaded_by", "created")
    list_filter = ("status", "storage_backend", "legal_hold", "retention_policy")
    search_fields = ("id", "original_filename", "sha256", "storage_key", "uploaded_by__username")
    list_select_related = ("uploaded_by", "session")
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
class UploadSessionAdmin(UploadSessionColumns, ServiceOwnedMixin, admin.ModelAdmin):
    list_display = (
        "session_id",
        "filename",
        "session_status",
        "parts",
        "size",
        "created_by",
        "last_activity",
    )
    list_filter = ("status", "failure_reason")
    search_fields = ("id", "idempotency_key", "file__original_filename", "created_by__username")
    list_select_related = ("created_by", "file")
    raw_id_fields = ("file", "created_by")
    date_hierarchy = "created_at"
    inlines = [UploadPartInline]


@admin.register(ApiToken)
class ApiTokenAdmin(ApiTokenColumns, ReadOnlyTimestampsMixin, admin.ModelAdmin):
    # The hash is never shown: a token is printed once by create_api_token.
    list_display = ("prefix", "name", "user", "created", "last_used", "revoked")
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
