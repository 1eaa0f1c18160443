from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Ingest portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from celery import signals as celery_signals
        from celery.signals import beat_init
        from django.db.models.signals import post_migrate

        from portal import checks  # noqa: F401 - registers the system checks
        from portal.lookups import register_any_lookup
        from portal.metrics import counters, process
        from portal.receivers import install_schedule, install_schedule_on_beat, kick_dispatcher
        from portal.signals import cleanup_finished, event_emitted

        event_emitted.connect(kick_dispatcher, dispatch_uid="portal.kick_dispatcher")
        post_migrate.connect(install_schedule, sender=self, dispatch_uid="portal.schedule")
        beat_init.connect(install_schedule_on_beat, dispatch_uid="portal.schedule", weak=False)
        register_any_lookup(self.get_models())
        # -- metrics (SPEC §12) --
        cleanup_finished.connect(counters.cleanup_finished, dispatch_uid="portal.metrics.cleanup")
        for signal, receiver in (
            (celery_signals.worker_init, process.on_worker_init),
            (celery_signals.worker_process_shutdown, process.on_worker_process_shutdown),
            (celery_signals.worker_ready, process.on_worker_ready),
        ):
            signal.connect(receiver, weak=False, dispatch_uid=f"portal.metrics.{receiver.__name__}")
