"""What a tus request carries and what its answer states (SPEC §13).

The terms ``portal.services.tus`` and its view (``portal.views.tus``) share: the
``Upload-Metadata`` and ``Upload-Checksum`` a request sends, the state HEAD, PATCH
and POST report, and tus's own refusals.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from portal.exceptions import ChecksumMismatch, UploadRejected

CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
DEFAULT_FILENAME = "upload"


class TusChecksumMismatch(ChecksumMismatch):
    status = 460  # tus's answer to a body that does not match Upload-Checksum


class TusForbidden(UploadRejected):
    status, code = 403, "forbidden"


@dataclass(frozen=True)
class TusMetadata:
    """The ``Upload-Metadata`` pairs the portal reads, plus the raw header to echo."""

    raw: str
    filename: str
    filetype: str
    retention_class: str  # a retention policy code; "" means the default policy


@dataclass(frozen=True)
class TusState:
    """What HEAD, PATCH and POST tell a tus client."""

    upload_id: str
    offset: int
    length: int
    metadata: str
    expires_at: datetime | None
    is_partial: bool
    is_final: bool
    complete: bool


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes
