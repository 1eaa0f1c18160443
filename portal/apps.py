from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Ingest portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from celery import signals as celery_signals

        from portal import checks  # noqa: F401 - registers the system checks
        from portal.lookups import register_any_lookup
        from portal.metrics import counters, process
        from portal.receivers import kick_dispatcher
        from portal.signals import cleanup_finished, event_emitted

        event_emitted.connect(kick_dispatcher, dispatch_uid="portal.kick_dispatcher")
        register_any_lookup(self.get_models())
        # -- metrics (SPEC §12) --
        cleanup_finished.connect(counters.cleanup_finished, dispatch_uid="portal.metrics.cleanup")
        for signal, receiver in (
            (celery_signals.worker_init, process.on_worker_init),
            (celery_signals.worker_process_shutdown, process.on_worker_process_shutdown),
            (celery_signals.worker_ready, process.on_worker_ready),
        ):
            signal.connect(receiver, weak=False, dispatch_uid=f"portal.metrics.{receiver.__name__}")
