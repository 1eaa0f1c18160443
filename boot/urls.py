from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

# The project has no public pages: "/" and the admin's "View site" lead to the admin.
admin.site.site_url = None
urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("admin/", admin.site.urls),
    path("", include("portal.urls")),
]
