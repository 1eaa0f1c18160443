"""Retention in the admin: policies (every change recorded), the audit, proofs of deletion,
and the legal hold actions of the file admin (behind ``portal.manage_legal_hold``)."""

from copy import copy

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.template.defaultfilters import pluralize

from portal.admin.compliance import RetentionReportMixin
from portal.admin.service_owned import ServiceOwnedMixin
from portal.exceptions import RetentionRefused
from portal.models import FileDeletion, RetentionChange, RetentionPolicy
from portal.services.legal_hold import release_legal_hold, set_legal_hold
from portal.services.policies import check_policy_change, save_policy


class RetentionPolicyForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ("code", "name", "retention", "notice", "is_default")

    def clean(self):
        cleaned = super().clean()
        # The instance is updated from the form only after clean(): check a copy.
        candidate = copy(self.instance)
        candidate.is_default = cleaned.get("is_default", False)
        try:
            check_policy_change(candidate)
        except RetentionRefused as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc
        return cleaned


class RetentionChangeInline(admin.TabularInline):
    model = RetentionChange
    fields = ("created_at", "changed_by_username", "changes")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-created_at",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    form = RetentionPolicyForm
    list_display = ("code", "name", "retention", "notice", "is_default", "updated_at")
    search_fields = ("code", "name")
    inlines = [RetentionChangeInline]

    def save_model(self, request, obj, form, change):
        save_policy(policy=obj, user=request.user)

    def has_delete_permission(self, request, obj=None):
        # Files point at their policy; the proof of a deletion names it. Never deleted.
        return False


@admin.register(RetentionChange)
class RetentionChangeAdmin(ServiceOwnedMixin, admin.ModelAdmin):
    list_display = ("created_at", "action", "policy", "file", "changed_by_username", "reason")
    list_filter = ("action",)
    search_fields = ("file__id", "policy__code", "changed_by_username", "reason")
    date_hierarchy = "created_at"


@admin.register(FileDeletion)
class FileDeletionAdmin(RetentionReportMixin, ServiceOwnedMixin, admin.ModelAdmin):
    list_display = (
        "deleted_at",
        "original_filename",
        "reason",
        "retention_class",
        "size_bytes",
        "deleted_by_username",
        "cleanup_run_id",
    )
    list_filter = ("reason", "retention_class", "storage_backend")
    search_fields = ("file_id", "original_filename", "storage_key", "sha256")
    date_hierarchy = "deleted_at"


class LegalHoldActionForm(ActionForm):
    reason = forms.CharField(required=False, max_length=500, label="Hold reason")


class LegalHoldActionsMixin:
    """Mixed into the file admin: place and release legal holds through the service."""

    action_form = LegalHoldActionForm
    actions = ["place_legal_hold", "release_legal_hold"]

    def has_manage_legal_hold_permission(self, request):
        return request.user.has_perm("portal.manage_legal_hold")

    @admin.action(
        description="Place a legal hold (reason required)", permissions=["manage_legal_hold"]
    )
    def place_legal_hold(self, request, queryset):
        self._hold(request, queryset, set_legal_hold, reason=request.POST.get("reason", ""))

    @admin.action(description="Release the legal hold", permissions=["manage_legal_hold"])
    def release_legal_hold(self, request, queryset):
        self._hold(request, queryset, release_legal_hold, reason=request.POST.get("reason", ""))

    def _hold(self, request, queryset, service, *, reason):
        ids = list(queryset.values_list("pk", flat=True))
        try:
            result = service(file_ids=ids, reason=reason, user=request.user)
        except RetentionRefused as exc:
            self.message_user(request, f"Nothing changed: {exc.message}", messages.ERROR)
            return
        verb = "Held" if service is set_legal_hold else "Released"
        self.message_user(
            request,
            f"{verb} {result.changed} file{pluralize(result.changed)}; {result.unchanged} already were.",
        )
