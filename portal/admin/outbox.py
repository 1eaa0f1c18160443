from django import forms
from django.contrib import admin, messages
from django.utils.translation import ngettext

from portal.models import OutboxDelivery, OutboxEvent, WebhookEndpoint
from portal.services.dispatcher import replay_dead_deliveries, retry_now

DELIVERY_FIELDS = (
    "destination",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "delivered_at",
)


def report_replayed(modeladmin, request, count):
    modeladmin.message_user(
        request,
        ngettext("%(count)d dead delivery replayed.", "%(count)d dead deliveries replayed.", count)
        % {"count": count},
        messages.SUCCESS,
    )


def report_retried(modeladmin, request, count):
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d pending delivery due now.", "%(count)d pending deliveries due now.", count
        )
        % {"count": count},
        messages.SUCCESS,
    )


class OutboxDeliveryInline(admin.TabularInline):
    model = OutboxDelivery
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ("id", "event_type", "aggregate_type", "aggregate_id", "created_at")
    list_filter = ("event_type", "deliveries__status")
    search_fields = ("id", "aggregate_id", "idempotency_key")
    readonly_fields = (
        "id",
        "event_type",
        "payload",
        "aggregate_type",
        "aggregate_id",
        "idempotency_key",
        "created_at",
        "updated_at",
    )
    date_hierarchy = "created_at"
    inlines = [OutboxDeliveryInline]
    actions = ["replay_dead", "retry_pending_now"]

    def has_add_permission(self, request):
        # Events are written by services in the transaction of the change they report.
        return False

    @admin.action(description="Replay dead deliveries of the selected events")
    def replay_dead(self, request, queryset):
        count = replay_dead_deliveries(deliveries=OutboxDelivery.objects.filter(event__in=queryset))
        report_replayed(self, request, count)

    @admin.action(description="Retry pending deliveries of the selected events now")
    def retry_pending_now(self, request, queryset):
        count = retry_now(deliveries=OutboxDelivery.objects.filter(event__in=queryset))
        report_retried(self, request, count)


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(admin.ModelAdmin):
    list_display = ("event", *DELIVERY_FIELDS)
    list_filter = ("status", "destination", "event__event_type")
    search_fields = ("event__id", "destination")
    list_select_related = ("event",)
    readonly_fields = ("event", "endpoint", "claim_token", *DELIVERY_FIELDS)
    actions = ["replay_dead", "retry_pending_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Replay selected dead deliveries")
    def replay_dead(self, request, queryset):
        report_replayed(self, request, replay_dead_deliveries(deliveries=queryset))

    @admin.action(description="Retry selected pending deliveries now")
    def retry_pending_now(self, request, queryset):
        report_retried(self, request, retry_now(deliveries=queryset))


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    # Write-only: the stored secret is never rendered back into the page.
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Write-only; leave blank to keep the current secret. "
        "whsec_<base64> signs with the decoded bytes, anything else with its UTF-8 bytes.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("name", "url", "secret", "event_types", "is_active", "disabled_reason")

    def clean_secret(self):
        secret = self.cleaned_data["secret"]
        if secret:
            return secret
        if self.instance.pk:
            return self.instance.secret
        raise forms.ValidationError("A new endpoint needs a secret.")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    # The secret is never listed; the form shows its last four characters at most.
    list_display = ("name", "url", "is_active", "event_types", "disabled_reason", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "url")
    readonly_fields = ("secret_hint",)

    @admin.display(description="Current secret")
    def secret_hint(self, obj):
        return f"…{obj.secret[-4:]}" if obj and obj.secret else "—"
