"""The upload API (SPEC §4): thin django-ninja operations over the session, chunk and finalize services.

The request models of ``portal.schemas`` validate every body and generate the
OpenAPI document at ``GET /uploads/openapi.json``; ``ERRORS`` lists the error
codes of each operation and status, and the document publishes them as
``x-error-codes``. Every refusal is ``{"error": {"code", "message"}}``: the
exception handlers below are the one place where errors become HTTP answers.
Bodies are read by ``portal.views.bodies`` (idle timeout, size bound); a part is
streamed to storage, never held whole in memory.
"""

import base64
import binascii
import functools
from typing import Annotated

import pydantic
import structlog
from django.db import OperationalError
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from ninja import NinjaAPI, Path
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from portal.auth import authenticate_request
from portal.exceptions import LengthRequired, StorageError, UploadRejected
from portal.logs import get_logger
from portal.schemas import (
    MAX_PARTS,
    SHA256_PATTERN,
    Error,
    FinalizeRequest,
    PartReceipt,
    Session,
    SessionRequest,
    document_settings,
)
from portal.services.chunks import receive_part
from portal.services.finalize import finalize_session, normalise_sha256
from portal.services.sessions import abort_session, create_session, get_session_status
from portal.views.bodies import idle_timeout_body, json_object

log = get_logger(__name__)

AUTH_CODES = ("missing_token", "invalid_token", "revoked_token")
GONE_CODES = ("session_aborted", "session_failed", "session_expired")
UNAVAILABLE_CODES = ("storage_unavailable", "database_unavailable")

# operationId → status → (description, error codes). The one list of what each
# operation refuses and why; tests check every answer against it.
ERRORS = {
    "createSession": {
        400: (
            "Invalid input.",
            (
                "invalid_json",
                "invalid_field",
                "invalid_chunk_size",
                "too_many_parts",
                "invalid_retention_class",
            ),
        ),
        401: ("No, invalid or revoked bearer token.", AUTH_CODES),
        409: ("idempotency_key already used for a different file.", ("idempotency_key_reused",)),
        413: (
            "total_size_bytes over PORTAL_MAX_FILE_SIZE, or body too large.",
            ("file_too_large", "body_too_large"),
        ),
        503: ("The database is unavailable; retry later.", ("database_unavailable",)),
    },
    "getSession": {
        401: ("No, invalid or revoked bearer token.", AUTH_CODES),
        404: ("Unknown id, not a UUID, or another user's session.", ("not_found",)),
        503: ("The database is unavailable; retry later.", ("database_unavailable",)),
    },
    "abortSession": {
        401: ("No, invalid or revoked bearer token.", AUTH_CODES),
        404: ("Unknown id, not a UUID, or another user's session.", ("not_found",)),
        409: ("The session is complete.", ("session_complete",)),
        410: ("Already aborted, failed or expired.", GONE_CODES),
        503: ("The database is unavailable; retry later.", ("database_unavailable",)),
    },
    "uploadPart": {
        400: (
            "Bad part number, size or checksum header.",
            ("invalid_part_number", "wrong_part_size", "invalid_sha256"),
        ),
        401: ("No, invalid or revoked bearer token.", AUTH_CODES),
        404: ("Unknown id, not a UUID, or another user's session.", ("not_found",)),
        408: ("The body sent nothing for PORTAL_PART_IDLE_TIMEOUT_SECONDS.", ("body_timeout",)),
        409: (
            "Different content for a received part, or the session is complete.",
            ("part_conflict", "session_complete"),
        ),
        410: ("Session aborted, failed or expired.", GONE_CODES),
        411: ("Content-Length missing.", ("length_required",)),
        413: ("Body longer than the part.", ("part_too_large",)),
        422: ("Body does not match the checksum header.", ("checksum_mismatch",)),
        503: ("Storage or database unavailable; retry later.", UNAVAILABLE_CODES),
        500: ("Storage refused the operation; retrying will not help.", ("storage_error",)),
    },
    "finalizeSession": {
        400: ("Invalid body.", ("invalid_json", "invalid_field", "invalid_sha256")),
        401: ("No, invalid or revoked bearer token.", AUTH_CODES),
        404: ("Unknown id, not a UUID, or another user's session.", ("not_found",)),
        409: (
            "Parts missing (missing_parts holds them as compact ranges) or their objects lost.",
            ("missing_parts",),
        ),
        410: ("Session aborted, failed or expired.", GONE_CODES),
        413: ("The JSON body is too large.", ("body_too_large",)),
        422: ("The file does not match sha256; the session has failed.", ("checksum_mismatch",)),
        503: ("Storage or database unavailable; retry later.", UNAVAILABLE_CODES),
        500: ("Storage refused the operation; retrying will not help.", ("storage_error",)),
    },
}
# Request bodies the views read themselves (bounded, with the idle timeout).
JSON_BODIES = {"createSession": (SessionRequest, True), "finalizeSession": (FinalizeRequest, False)}
# Content-Length is the transport's (required: 411 without it), not a parameter.
PART_REQUEST = {
    "parameters": [
        {
            "name": "X-Part-SHA256",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": SHA256_PATTERN},
        },
        {"name": "Content-Digest", "in": "header", "required": False, "schema": {"type": "string"}},
    ],
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
}


class PortalAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        """The document, generated once per value of the settings it states."""
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        return self._document(path_prefix, document_settings())

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one API object, alive as long as the process
    def _document(self, path_prefix: str, settings: tuple) -> dict:
        document = super().get_openapi_schema(path_prefix=path_prefix)
        components = document["components"].setdefault("schemas", {})
        for item in document["paths"].values():
            for operation in item.values():
                operation_id = operation["operationId"]
                if operation_id in JSON_BODIES:
                    model, required = JSON_BODIES[operation_id]
                    components[model.__name__] = model.model_json_schema(
                        ref_template="#/components/schemas/{model}"
                    )
                    operation["requestBody"] = {
                        "required": required,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                            }
                        },
                    }
                if operation_id == "uploadPart":
                    operation["parameters"] += PART_REQUEST["parameters"]
                    operation["requestBody"] = PART_REQUEST["requestBody"]
                for status, (_, codes) in ERRORS.get(operation_id, {}).items():
                    operation["responses"][status]["x-error-codes"] = list(codes)
        return document


class BearerToken(HttpBearer):
    """``Authorization: Bearer <token>``; refusals carry their own code (missing/invalid/revoked)."""

    def __call__(self, request):
        return authenticate_request(request)

    def authenticate(self, request, token):  # required by HttpBearer; __call__ does the work
        return authenticate_request(request)


api = PortalAPI(
    title="Ingest portal upload API",
    version="1.0.0",
    description='Resumable chunked uploads. Errors are {"error": {"code", "message"}}.',
    auth=BearerToken(),
    urls_namespace="portal:uploads",
    docs_url=None,
    openapi_url="/openapi.json",
)


def error_response(status: int, code: str, message: str, **details) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message, **details}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="portal"'
    return response


@api.exception_handler(UploadRejected)
def _rejected(request, exc: UploadRejected):
    return error_response(exc.status, exc.code, exc.message, **exc.details)


@api.exception_handler(StorageError)
def _storage_failed(request, exc: StorageError):
    log.error("storage.failed", error=str(exc), path=request.path)
    return error_response(exc.status, exc.code, exc.public_message)


@api.exception_handler(OperationalError)
def _database_failed(request, exc: OperationalError):
    log.error("database.failed", error=str(exc), path=request.path)
    return error_response(503, "database_unavailable", "The database is unavailable; retry later.")


@api.exception_handler(pydantic.ValidationError)
def _invalid_body(request, exc: pydantic.ValidationError):
    return _invalid(exc.errors(include_url=False, include_input=False), source="body")


@api.exception_handler(NinjaValidationError)
def _invalid_parameters(request, exc: NinjaValidationError):
    return _invalid(exc.errors, source=None)


def _invalid(errors: list[dict], *, source: str | None) -> JsonResponse:
    first = errors[0]
    location = [str(part) for part in first["loc"] if part != source]
    if location[:2] == ["path", "part_number"]:
        return error_response(
            400, "invalid_part_number", f"The part number must be an integer from 1 to {MAX_PARTS}."
        )
    field = ".".join(location) or "body"
    return error_response(400, "invalid_field", f"{field}: {first['msg']}.")


def _responses(operation_id: str, ok: dict) -> dict:
    """The decorator arguments documenting an operation's answers (``ok``: status → model)."""
    errors = ERRORS[operation_id]
    return {
        "operation_id": operation_id,
        "response": {**ok, **dict.fromkeys(errors, Error)},
        "openapi_extra": {
            "responses": {status: {"description": text} for status, (text, _) in errors.items()}
        },
    }


SessionId = Annotated[str, Path(description="The session id (a UUID); anything else is 404.")]
PartNumber = Annotated[int, Path(ge=1, le=MAX_PARTS)]


def _bind(**ids) -> None:
    # Every log line of the request carries the ids from its URL.
    structlog.contextvars.bind_contextvars(**{k: str(v) for k, v in ids.items()})


@api.post(
    "/sessions",
    summary="Open an upload session for a new file",
    **_responses("createSession", {201: Session, 200: Session}),
)
def create(request):
    result = create_session(
        user=request.auth, request=SessionRequest.model_validate(json_object(request))
    )
    return JsonResponse(result.as_dict(), status=201 if result.created else 200)


@api.get(
    "/sessions/{session_id}",
    summary="Status, counters, received parts and, once complete, the file",
    **_responses("getSession", {200: Session}),
)
def detail(request, session_id: SessionId):
    _bind(session_id=session_id)
    return JsonResponse(get_session_status(user=request.auth, session_id=session_id).as_dict())


@api.delete(
    "/sessions/{session_id}",
    summary="Abort the session; cleanup deletes its parts",
    **_responses("abortSession", {204: None}),
)
def abort(request, session_id: SessionId):
    _bind(session_id=session_id)
    abort_session(user=request.auth, session_id=session_id)
    return HttpResponse(status=204)


@api.put(
    "/sessions/{session_id}/parts/{part_number}",
    summary="Upload one part as the raw request body",
    description=(
        "Every part but the last is exactly chunk_size_bytes; the last holds the rest. "
        "Content-Length is required. An optional X-Part-SHA256 (hex) or Content-Digest "
        "(sha-256=:base64:) header is verified before the part counts. A body that sends "
        "nothing for PORTAL_PART_IDLE_TIMEOUT_SECONDS is abandoned (408)."
    ),
    **_responses("uploadPart", {201: PartReceipt, 200: PartReceipt}),
)
def upload_part(request, session_id: SessionId, part_number: PartNumber):
    _bind(session_id=session_id, part_number=part_number)
    with idle_timeout_body(request) as body:
        receipt = receive_part(
            user=request.auth,
            session_id=session_id,
            part_number=part_number,
            stream=body,
            content_length=content_length_of(request),
            sha256=part_sha256_of(request),
        )
    return JsonResponse(receipt.as_dict(), status=201 if receipt.created else 200)


@api.post(
    "/sessions/{session_id}/finalize",
    summary="Assemble the parts into the stored file; idempotent",
    **_responses("finalizeSession", {200: Session}),
)
def finalize(request, session_id: SessionId):
    _bind(session_id=session_id)
    payload = FinalizeRequest.model_validate(json_object(request))
    result = finalize_session(
        user=request.auth, session_id=session_id, sha256=normalise_sha256(payload.sha256)
    )
    return JsonResponse(result.as_dict())


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


def _json_405(view):
    """Ninja answers a wrong method in plain text; the API answers it in its error shape."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = ", ".join(sorted(m.strip() for m in response["Allow"].split(",")))
            response = error_response(405, "method_not_allowed", f"Use {allowed}.")
            response["Allow"] = allowed
        return response

    return wrapper


def urlpatterns() -> list:
    """The API's routes, for ``include()`` under ``uploads/``."""
    patterns, _, _ = api.urls
    for pattern in patterns:
        pattern.callback = _json_405(pattern.callback)
    return patterns
