from django.urls import path

from portal.views import cleanup, health, metrics, uploads

app_name = "portal"

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("health/cleanup", cleanup.cleanup_status, name="health-cleanup"),
    path("uploads/openapi.json", uploads.openapi, name="upload-openapi"),
    path("uploads/sessions", uploads.sessions, name="upload-sessions"),
    path("uploads/sessions/<str:session_id>", uploads.session_detail, name="upload-session"),
    path(
        "uploads/sessions/<str:session_id>/parts/<str:part_number>",
        uploads.session_part,
        name="upload-part",
    ),
    path(
        "uploads/sessions/<str:session_id>/finalize",
        uploads.session_finalize,
        name="upload-finalize",
    ),
]
