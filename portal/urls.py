from django.urls import include, path

from portal.views import cleanup, health, tus, uploads

app_name = "portal"

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("health/cleanup", cleanup.cleanup_status, name="health-cleanup"),
    path("uploads/tus/", include(tus.urlpatterns)),
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
