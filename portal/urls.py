from django.urls import include, path

from portal.views import cleanup, health, metrics, uploads

app_name = "portal"

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("health/cleanup", cleanup.cleanup_status, name="health-cleanup"),
    path("uploads/", include((uploads.urlpatterns(), "uploads"))),
]
