"""Kubernetes probes: ``/health`` (liveness) and ``/ready`` (readiness).

``portal.middleware.ProbeMiddleware`` serves these views before host validation
and the HTTPS redirect; ``portal.urls`` maps them too, for hosts that do not
install the middleware.
"""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal.services.health import check_readiness


@require_safe
@never_cache
def health(request):
    """200 while the process serves requests. Touches nothing: no database, session or storage."""
    return _json(request, {"status": "ok"})


@require_safe
@never_cache
def ready(request):
    """200 when the database and storage answer within the readiness budget, 503 otherwise."""
    report = check_readiness()
    return _json(request, report.as_dict(), status=200 if report.ok else 503)


def _json(request, data: dict, *, status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    if request.method == "HEAD":
        # HEAD carries no body; gunicorn would drop it, with a warning on every probe.
        response.content = b""
    return response
