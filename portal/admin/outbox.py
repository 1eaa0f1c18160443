from django.contrib import admin

from portal.models import OutboxDelivery, OutboxEvent, WebhookEndpoint


class OutboxDeliveryInline(admin.TabularInline):
    model = OutboxDelivery
    fields = (
        "destination",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
    )
    readonly_fields = fields
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


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    # The secret is write-only in the form and never listed.
    list_display = ("name", "url", "is_active", "event_types", "disabled_reason", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "url")
