"""The upload API (SPEC §4): thin JSON views over the session, chunk and finalize services.

Every view goes through ``api_view``, the one place where portal errors become
HTTP statuses and ``{"error": {"code", "message"}}`` bodies.
"""

import base64
import binascii
import functools
import json

import structlog
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from portal.auth import authenticate_request
from portal.exceptions import LengthRequired, StorageError, TooLarge, UploadRejected
from portal.openapi import openapi_document
from portal.services.chunks import receive_part
from portal.services.finalize import finalize_session, normalise_sha256
from portal.services.sessions import (
    SessionRequest,
    abort_session,
    create_session,
    get_session_status,
)

log = structlog.get_logger(__name__)

SESSION_FIELDS = (
    "original_filename",
    "content_type",
    "total_size_bytes",
    "chunk_size_bytes",
    "idempotency_key",
    "retention_class",
)
FINALIZE_FIELDS = ("sha256",)


def error_response(status: int, code: str, message: str, **details) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message, **details}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="portal"'
    return response


def api_view(*methods, authenticated=True):
    """Accept ``methods``, authenticate the bearer token and render portal errors as JSON."""

    def decorate(view):
        @csrf_exempt  # token-authenticated, never cookie-authenticated
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = error_response(405, "method_not_allowed", f"Use {', '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            # Every log line of the request carries the ids from its URL.
            structlog.contextvars.bind_contextvars(**kwargs)
            try:
                if authenticated:
                    request.user = authenticate_request(request)
                return view(request, *args, **kwargs)
            except UploadRejected as exc:
                return error_response(exc.status, exc.code, exc.message, **exc.details)
            except StorageError as exc:
                log.error("storage.failed", error=str(exc), path=request.path)
                return error_response(exc.status, exc.code, exc.public_message)

        wrapper.allowed_methods = methods
        return wrapper

    return decorate


def json_body(request, *, allowed: tuple[str, ...]) -> dict:
    """The request body as a JSON object of ``allowed`` fields (empty body → {})."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise TooLarge("The JSON body is too large.", code="body_too_large") from None
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UploadRejected("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise UploadRejected("The body must be a JSON object.", code="invalid_json")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise UploadRejected(f"Unknown fields: {', '.join(unknown)}.", code="invalid_field")
    return data


def part_number_of(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise UploadRejected(
            "The part number must be a positive integer.", code="invalid_part_number"
        )
    return int(value)


def content_length_of(request) -> int | None:
    value = request.META.get("CONTENT_LENGTH", "")
    if value == "":
        return None
    if not (value.isascii() and value.isdigit()):
        raise LengthRequired("Content-Length must be a non-negative integer.")
    return int(value)


def part_sha256_of(request) -> str | None:
    """The part's SHA-256 from ``X-Part-SHA256`` (hex) or ``Content-Digest: sha-256=:b64:``."""
    hex_digest = request.headers.get("X-Part-SHA256")
    if hex_digest is not None:
        return normalise_sha256(hex_digest.strip())
    for member in request.headers.get("Content-Digest", "").split(","):
        algorithm, _, value = member.strip().partition("=")
        if algorithm.lower() != "sha-256":
            continue
        try:
            digest = base64.b64decode(value.strip().strip(":"), validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) != 32:
            raise UploadRejected(
                "Content-Digest sha-256 must be 32 bytes in base64.", code="invalid_sha256"
            )
        return digest.hex()
    return None


@api_view("POST")
def sessions(request):
    body = json_body(request, allowed=SESSION_FIELDS)
    if "original_filename" not in body or "total_size_bytes" not in body:
        raise UploadRejected(
            "original_filename and total_size_bytes are required.", code="invalid_field"
        )
    retention_class = body.pop("retention_class", None)
    result = create_session(
        user=request.user,
        request=SessionRequest.validate(**body),
        retention_class=retention_class,
    )
    return JsonResponse(result.as_dict(), status=201 if result.created else 200)


@api_view("GET", "DELETE")
def session_detail(request, session_id):
    if request.method == "DELETE":
        abort_session(user=request.user, session_id=session_id)
        return HttpResponse(status=204)
    return JsonResponse(get_session_status(user=request.user, session_id=session_id).as_dict())


@api_view("PUT")
def session_part(request, session_id, part_number):
    receipt = receive_part(
        user=request.user,
        session_id=session_id,
        part_number=part_number_of(part_number),
        # The request is file-like over the body, limited to Content-Length: the
        # adapter reads it in bounded pieces, so the body is never held whole.
        stream=request,
        content_length=content_length_of(request),
        sha256=part_sha256_of(request),
    )
    return JsonResponse(receipt.as_dict(), status=201 if receipt.created else 200)


@api_view("POST")
def session_finalize(request, session_id):
    body = json_body(request, allowed=FINALIZE_FIELDS)
    result = finalize_session(
        user=request.user, session_id=session_id, sha256=normalise_sha256(body.get("sha256"))
    )
    return JsonResponse(result.as_dict())


@api_view("GET", authenticated=False)
def openapi(request):
    return JsonResponse(openapi_document())
