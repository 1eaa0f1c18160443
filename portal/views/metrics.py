"""``GET /metrics``: Prometheus text exposition of the portal's counters and gauges.

``portal.middleware.ProbeMiddleware`` serves it ahead of host validation, like the
probes (Prometheus scrapes pod IPs); ``portal.urls`` maps it too.
``PORTAL_METRICS_ENABLED=false`` turns it into a 404.
"""

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal import conf
from portal.metrics.exposition import render


@require_safe
@never_cache
def metrics(request):
    if not conf.metrics_enabled():
        return JsonResponse(
            {"error": {"code": "not_found", "message": "Metrics are turned off."}}, status=404
        )
    body, content_type = render()
    return HttpResponse(b"" if request.method == "HEAD" else body, content_type=content_type)
