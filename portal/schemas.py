"""The upload API's contract: pydantic models that validate requests and describe answers.

One source for every rule: the views validate with these models and the OpenAPI
document is generated from them (django-ninja), so a limit cannot be enforced
in one place and documented differently in another. Limits that come from
settings are read when a request is validated and again each time the document
is rendered, so both always state the same value.

Refusals that SPEC §4 gives their own status or code raise ``portal.exceptions``
directly (pydantic lets those through unchanged); every other broken field is a
plain validation error, answered 400 ``invalid_field``.
"""

import math
import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    create_model,
    field_validator,
)
from pydantic import model_validator as _model_validator

from portal import conf
from portal.exceptions import TooLarge, UploadRejected
from portal.models import UploadFile, UploadSession

# S3 multipart uploads hold at most 10,000 parts; the filesystem follows suit.
MAX_PARTS = 10_000
MAX_FILENAME_LENGTH = UploadFile._meta.get_field("original_filename").max_length
MAX_CONTENT_TYPE_LENGTH = UploadFile._meta.get_field("content_type").max_length
MAX_IDEMPOTENCY_KEY_LENGTH = UploadSession._meta.get_field("idempotency_key").max_length

# RFC 6838 type/subtype names, then optional RFC 9110 parameters; nothing else, so no
# control character (CR/LF) ever reaches storage metadata or a webhook payload.
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
MEDIA_TYPE_PATTERN = (
    rf'^{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|"[^"\\\x00-\x1f\x7f]*"))*$'
)
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"


# The setting readers that bounds in the document come from (filled by ``_limits``).
DOCUMENT_SETTINGS = []


def parts_needed(total_size_bytes: int, chunk_size_bytes: int) -> int:
    """How many parts of ``chunk_size_bytes`` hold the file (the last one may be short)."""
    return math.ceil(total_size_bytes / chunk_size_bytes)


def document_settings() -> tuple:
    """The current values of every setting the document states: its cache key."""
    return tuple(read() for read in DOCUMENT_SETTINGS)


def _limits(**bounds):
    """A ``json_schema_extra`` that states settings-driven bounds when the document renders."""
    DOCUMENT_SETTINGS.extend(bounds.values())

    def extra(schema: dict) -> None:
        schema.update({key: read() for key, read in bounds.items()})

    return extra


def _check_storable(value: str | None) -> str | None:
    # PostgreSQL text holds neither NUL nor lone surrogates (valid in JSON escapes).
    if value is None:
        return value
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate") from None
    return value


class SessionRequest(BaseModel):
    """``POST /uploads/sessions``: a request to open a session for a new file.

    An optional field is one line here: its type, its default and its limits.
    """

    model_config = ConfigDict(extra="forbid")

    original_filename: Annotated[
        StrictStr, Field(min_length=1, max_length=MAX_FILENAME_LENGTH, pattern=r"\S")
    ]
    content_type: (
        Annotated[StrictStr, Field(max_length=MAX_CONTENT_TYPE_LENGTH, pattern=MEDIA_TYPE_PATTERN)]
        | None
    ) = None
    total_size_bytes: Annotated[
        StrictInt,
        Field(ge=1, json_schema_extra=_limits(maximum=conf.max_file_size)),
    ]
    chunk_size_bytes: (
        Annotated[
            StrictInt,
            Field(
                json_schema_extra=_limits(minimum=conf.chunk_size_min, maximum=conf.chunk_size_max)
            ),
        ]
        | None
    ) = Field(default=None, validate_default=True, description="Default PORTAL_CHUNK_SIZE.")
    idempotency_key: Annotated[StrictStr, Field(max_length=MAX_IDEMPOTENCY_KEY_LENGTH)] | None = (
        None
    )
    # A retention policy code; unknown ones are the service's 400 invalid_retention_class.
    retention_class: StrictStr | None = Field(
        default=None, description="Default: the default policy."
    )

    @field_validator("original_filename", "content_type", "idempotency_key", "retention_class")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return _check_storable(value)

    @field_validator("total_size_bytes")
    @classmethod
    def _within_max_file_size(cls, value: int) -> int:
        if value > conf.max_file_size():
            raise TooLarge(
                f"total_size_bytes exceeds the limit of {conf.max_file_size()} bytes.",
                code="file_too_large",
            )
        return value

    @field_validator("chunk_size_bytes")
    @classmethod
    def _within_chunk_bounds(cls, value: int | None) -> int:
        value = conf.chunk_size() if value is None else value
        low, high = conf.chunk_size_min(), conf.chunk_size_max()
        if not low <= value <= high:
            raise UploadRejected(
                f"chunk_size_bytes must be between {low} and {high}.", code="invalid_chunk_size"
            )
        return value

    @_model_validator(mode="after")
    def _at_most_max_parts(self) -> "SessionRequest":
        if self.total_parts > MAX_PARTS:
            raise UploadRejected(
                f"The file would need {self.total_parts} parts; at most {MAX_PARTS} are "
                "allowed. Use a larger chunk_size_bytes.",
                code="too_many_parts",
            )
        return self

    @property
    def total_parts(self) -> int:
        return parts_needed(self.total_size_bytes, self.chunk_size_bytes)

    def matches(self, session: UploadSession) -> bool:
        return (
            session.file.original_filename == self.original_filename
            and session.total_size_bytes == self.total_size_bytes
            and session.chunk_size_bytes == self.chunk_size_bytes
        )


class FinalizeRequest(BaseModel):
    """``POST /uploads/sessions/{id}/finalize``: optionally the SHA-256 the file must have."""

    model_config = ConfigDict(extra="forbid")

    sha256: Annotated[StrictStr, Field(pattern=SHA256_PATTERN)] | None = None

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex(cls, value):
        # Before the pattern: a bad digest has its own code, as in the part headers.
        if value is not None and not (isinstance(value, str) and re.match(SHA256_PATTERN, value)):
            raise UploadRejected("sha256 must be 64 hexadecimal characters.", code="invalid_sha256")
        return value


# -- answers (documentation and tests; views render the services' dicts) -----------


class StorageRef(BaseModel):
    backend: str
    bucket: str
    key: str


# "class" is a Python keyword, so this model is built rather than declared.
Retention = create_model(
    "Retention",
    **{
        "class": (str | None, Field(description="The retention policy code.")),
        "expires_at": (
            datetime | None,
            Field(description="stored_at + the class's retention; null: kept indefinitely."),
        ),
    },
)


class StoredFile(BaseModel):
    id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    storage: StorageRef
    retention: Retention


class Session(BaseModel):
    session_id: uuid.UUID
    file_id: uuid.UUID
    status: Literal[tuple(UploadSession.Status.values)]
    chunk_size_bytes: int
    total_parts: int
    total_size_bytes: int
    completed_parts: int
    bytes_received: int
    received_parts: Annotated[str, Field(examples=["1-50,52,55-100"])]
    expires_at: Annotated[
        datetime | None,
        Field(description="last activity + PORTAL_SESSION_TTL_HOURS; null once terminal."),
    ]
    failure_reason: str
    file: StoredFile | None


class PartReceipt(BaseModel):
    session_id: uuid.UUID
    part_number: int
    size_bytes: int
    sha256: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. missing_parts

    code: str
    message: str


class Error(BaseModel):
    error: ErrorDetail
