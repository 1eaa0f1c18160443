from django.urls import path  # each feature adds its routes below

from portal.views import health

app_name = "portal"

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
]
