from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Ingest portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal import checks  # noqa: F401 - registers the system checks
        from portal.lookups import register_any_lookup
        from portal.receivers import kick_dispatcher
        from portal.signals import event_emitted

        event_emitted.connect(kick_dispatcher, dispatch_uid="portal.kick_dispatcher")
        register_any_lookup(self.get_models())
