"""Request-scoped logging context, and the probes and metrics answered ahead of the stack."""

import re
import uuid

import structlog

from portal.views import health, metrics

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Bind a ``request_id`` to every log line of a request and echo it back.

    A well-formed ``X-Request-ID`` from a proxy is kept so logs join up across
    services; anything else is replaced by a fresh id.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            structlog.contextvars.clear_contextvars()
        response[REQUEST_ID_HEADER] = request_id
        return response


class ProbeMiddleware:
    """Answer the Kubernetes probes ``/health`` and ``/ready``, and ``/metrics``, before anything else.

    kubelet (and Prometheus) send the pod IP as ``Host`` and speak plain HTTP, so behind
    ``ALLOWED_HOSTS`` and ``SECURE_SSL_REDIRECT`` a probe would get a 400 or a
    redirect instead of the truth. Put this first in ``MIDDLEWARE``: it never
    calls ``request.get_host()`` and lets every other request through untouched.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.probes = {
            "/health": health.health,
            "/ready": health.ready,
            "/metrics": metrics.metrics,
        }

    def __call__(self, request):
        probe = self.probes.get(request.path_info)
        if probe is None or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        return probe(request)
