"""tus 1.0.0 at ``/uploads/tus/`` (SPEC §13): headers in, ``portal.services.tus`` out.

Errors keep the JSON API's shape (``{"error": {"code", "message"}}``) and every
answer carries ``Tus-Resumable``. OPTIONS needs no token (a browser's preflight
sends none); everything else is bearer-token authenticated like the JSON API.
"""

import base64
import functools

import structlog
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from portal import conf
from portal.auth import authenticate_request
from portal.exceptions import StorageError, UploadRejected
from portal.logs import get_logger
from portal.services import tus, tus_messages
from portal.views.bodies import idle_timeout_body
from portal.views.uploads import content_length_of, error_response

log = get_logger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum,concatenation"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


class PreconditionFailed(UploadRejected):
    status = 412
    code = "unsupported_tus_version"


class UnsupportedMediaType(UploadRejected):
    status = 415
    code = "unsupported_media_type"


def tus_view(*methods):
    """Accept ``methods``, check ``Tus-Resumable``, authenticate, render errors as JSON."""

    def decorate(view):
        @csrf_exempt  # token-authenticated, never cookie-authenticated
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            structlog.contextvars.bind_contextvars(**kwargs)
            try:
                if request.method == "OPTIONS":
                    response = _options()
                elif request.method not in methods:
                    response = error_response(
                        405, "method_not_allowed", f"Use {', '.join(methods)}."
                    )
                    response["Allow"] = ", ".join((*methods, "OPTIONS"))
                else:
                    if request.headers.get("Tus-Resumable") != TUS_VERSION:
                        raise PreconditionFailed(f"Send 'Tus-Resumable: {TUS_VERSION}'.")
                    request.user = authenticate_request(request)
                    response = view(request, *args, **kwargs)
            except UploadRejected as exc:
                response = error_response(exc.status, exc.code, exc.message, **exc.details)
                if exc.status == 412:
                    response["Tus-Version"] = TUS_VERSION
            except StorageError as exc:
                log.error("storage.failed", error=str(exc), path=request.path)
                response = error_response(
                    503, "storage_unavailable", "Storage is unavailable; retry later."
                )
            response["Tus-Resumable"] = TUS_VERSION
            response["Cache-Control"] = "no-store"
            return response

        return wrapper

    return decorate


def _options() -> HttpResponse:
    response = HttpResponse(status=204)
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = TUS_EXTENSIONS
    response["Tus-Max-Size"] = str(conf.max_file_size())
    response["Tus-Checksum-Algorithm"] = ",".join(tus_messages.CHECKSUM_ALGORITHMS)
    return response


def parse_metadata(header: str) -> tus_messages.TusMetadata:
    """``key base64value,key2 …`` → ``TusMetadata``; 400 on a malformed pair."""
    pairs = {}
    for item in filter(None, (part.strip() for part in header.split(","))):
        key, _, value = item.partition(" ")
        if not key or key in pairs:
            raise UploadRejected(f"Upload-Metadata key {key!r} is empty or repeated.")
        try:
            pairs[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except ValueError:
            raise UploadRejected(
                f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text.",
                code="invalid_metadata",
            ) from None
    return tus_messages.TusMetadata(
        raw=header.strip(),
        filename=pairs.get("filename") or pairs.get("name") or tus_messages.DEFAULT_FILENAME,
        filetype=pairs.get("filetype") or pairs.get("type") or "",
        retention_class=pairs.get("retention_class", ""),
    )


def parse_checksum(header: str | None) -> tus_messages.Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; 400 for an unknown algorithm."""
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm not in tus_messages.CHECKSUM_ALGORITHMS:
        raise UploadRejected(
            f"Checksum algorithm {algorithm!r} is not supported; use "
            f"{', '.join(tus_messages.CHECKSUM_ALGORITHMS)}.",
            code="unsupported_checksum_algorithm",
        )
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        digest = b""
    if len(digest) != tus_messages.CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise UploadRejected("Upload-Checksum is not a base64 digest.", code="invalid_checksum")
    return tus_messages.Checksum(algorithm=algorithm, digest=digest)


def _integer_header(request, name: str) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        raise UploadRejected(f"{name} must be a non-negative integer.", code="invalid_header")
    return int(value)


def _state_headers(response: HttpResponse, state: tus_messages.TusState) -> HttpResponse:
    response["Upload-Offset"] = str(state.offset)
    response["Upload-Length"] = str(state.length)
    if state.metadata:
        response["Upload-Metadata"] = state.metadata
    if state.expires_at is not None:
        response["Upload-Expires"] = http_date(state.expires_at.timestamp())
    if state.is_partial:
        response["Upload-Concat"] = "partial"
    elif state.is_final:
        response["Upload-Concat"] = "final"
    return response


def _upload_id(url: str) -> str:
    """The upload id at the end of an upload URL (absolute or a path)."""
    return url.rstrip("/").rpartition("/")[2]


def _body_of(request) -> tuple[int | None, tus_messages.Checksum | None]:
    if request.headers.get("Content-Type", "").split(";")[0].strip() != OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType(f"Send the bytes as Content-Type: {OFFSET_CONTENT_TYPE}.")
    checksum = parse_checksum(request.headers.get("Upload-Checksum"))
    return content_length_of(request), checksum


@tus_view("POST")
def uploads(request):
    metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
    concat = request.headers.get("Upload-Concat", "").strip()
    if concat.startswith("final;"):
        ids = [_upload_id(url) for url in concat.removeprefix("final;").split()]
        state = tus.create_final(user=request.user, partial_ids=ids, metadata=metadata)
    elif concat in ("", "partial"):
        # creation-with-upload: a body comes with the POST; its headers are checked first.
        body = _body_of(request) if content_length_of(request) else None
        state = tus.create_upload(
            user=request.user,
            length=_integer_header(request, "Upload-Length"),
            metadata=metadata,
            is_partial=concat == "partial",
        )
        if body is not None:
            length, checksum = body
            with idle_timeout_body(request) as stream:  # the part idle timeout applies
                state = tus.append(
                    user=request.user,
                    upload_id=state.upload_id,
                    offset=0,
                    stream=stream,
                    content_length=length,
                    checksum=checksum,
                )
    else:
        raise UploadRejected("Upload-Concat must be 'partial' or 'final;…'.", code="invalid_concat")
    response = _state_headers(HttpResponse(status=201), state)
    response["Location"] = request.build_absolute_uri(
        reverse("portal:tus-upload", args=[state.upload_id])
    )
    return response


@tus_view("HEAD", "PATCH", "DELETE")
def upload(request, upload_id):
    if request.method == "DELETE":
        tus.terminate(user=request.user, upload_id=upload_id)
        return HttpResponse(status=204)
    if request.method == "HEAD":
        return _state_headers(
            HttpResponse(status=200), tus.get_upload(user=request.user, upload_id=upload_id)
        )
    offset = _integer_header(request, "Upload-Offset")
    if offset is None:
        raise UploadRejected("Upload-Offset is required.", code="invalid_header")
    length, checksum = _body_of(request)
    with idle_timeout_body(request) as stream:  # the part idle timeout applies
        state = tus.append(
            user=request.user,
            upload_id=upload_id,
            offset=offset,
            stream=stream,
            content_length=length,
            checksum=checksum,
        )
    return _state_headers(HttpResponse(status=204), state)


urlpatterns = [
    path("", uploads, name="tus-uploads"),
    path("<str:upload_id>", upload, name="tus-upload"),
]
