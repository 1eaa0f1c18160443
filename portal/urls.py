from django.urls import include, path

from portal.views import cleanup, health, tus, uploads

app_name = "portal"

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("health/cleanup", cleanup.cleanup_status, name="health-cleanup"),
    path("uploads/tus/", include(tus.urlpatterns)),
    path("uploads/", include((uploads.urlpatterns(), "uploads"))),
]
