"""``GET /health/cleanup``: is cleanup running, and what did it do lately."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal.selectors.cleanup import cleanup_health


@require_safe
@never_cache
def cleanup_status(request):
    """200 when a run succeeded within three cleanup intervals, 503 otherwise."""
    health = cleanup_health()
    return JsonResponse(health.as_dict(), status=200 if health.healthy else 503)
