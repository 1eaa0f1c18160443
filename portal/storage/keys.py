"""Key construction and validation shared by every adapter."""

import re
import uuid
from typing import NamedTuple

from django.core.exceptions import SuspiciousFileOperation
from django.utils.text import get_valid_filename

from portal.exceptions import InvalidStorageKey


def normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if not prefix or ".." in prefix.split("/"):
        raise InvalidStorageKey(f"invalid storage prefix {prefix!r}")
    return prefix + "/"


def temp_part_key(temp_prefix: str, session_id, part_number: int) -> str:
    """``<prefix><shard>/<session id>-<part number>-<random>.part``.

    The shard is the session id's last two hex digits (random in a UUIDv7): parts spread
    over at most 256 folders (S3: prefixes) that are never removed, instead of one
    folder per session that cleanup would have to remove with its last part. A fresh
    suffix per write: a concurrent or conflicting re-send of the same part never
    overwrites the object the database already points at.
    """
    session = str(session_id)
    return f"{temp_prefix}{session[-2:]}/{session}-{int(part_number):06d}-{uuid.uuid4().hex}.part"


# What follows the temp prefix in every key temp_part_key writes, and nothing else:
# "<shard>/<session id>-<part number>-<32 hex>.part", lowercase, the shard being the
# session id's last two digits, the part number at least 1. Cleanup's storage sweep
# deletes only keys of this shape.
TEMP_PART_NAME = re.compile(
    r"(?P<shard>[0-9a-f]{2})/"
    r"(?P<session>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{10}(?P=shard))"
    r"-(?!000000)(?P<part>[0-9]{6})-[0-9a-f]{32}\.part"
)


class TempPartKey(NamedTuple):
    session_id: str  # as written in the key: a lowercase UUID
    part_number: int


def parse_temp_part_key(key: str, temp_prefix: str) -> TempPartKey | None:
    """The session and part a key names if it has exactly the shape ``temp_part_key``
    writes under ``temp_prefix``; ``None`` for any other key (not the portal's).

    One compiled match and no object but the result: the sweep parses every key
    under the prefix.
    """
    match = TEMP_PART_NAME.fullmatch(key, len(temp_prefix)) if key.startswith(temp_prefix) else None
    return TempPartKey(match["session"], int(match["part"])) if match else None


# A file name is at most 255 bytes on the common filesystems (ext4, XFS, btrfs, APFS).
MAX_NAME_BYTES = 255
# An extension this short survives shortening: "<shortened stem>.pdf".
MAX_SUFFIX_BYTES = 16


def final_key(final_prefix: str, file_id, filename: str) -> str:
    """``<prefix><file id>/<name>``: the client's filename made safe and at most 255 bytes.

    The name is only the storage name; the original filename is kept, unshortened,
    on the file's row (``UploadFile.original_filename``).
    """
    return f"{final_prefix}{file_id}/{_final_name(filename)}"


def _final_name(filename: str) -> str:
    try:
        name = get_valid_filename(filename)
    except SuspiciousFileOperation:  # nothing usable left, e.g. "." or "..."
        name = "file"
    return _fit_bytes(name, MAX_NAME_BYTES)


def _fit_bytes(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not (dot and stem) or len(suffix.encode()) + 1 > MAX_SUFFIX_BYTES:
        stem, suffix = name, ""
    else:
        suffix = dot + suffix
    # Cut on a character boundary: a partial UTF-8 sequence at the end is dropped.
    stem = stem.encode()[: limit - len(suffix.encode())].decode("utf-8", "ignore")
    return stem + suffix


# ``final_key``'s shape after the prefix: a canonical file id, one name segment.
FINAL_KEY = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/([^/]+)")


def final_key_file_id(final_prefix: str, key: str) -> uuid.UUID | None:
    """The file id of a key of exactly the shape ``final_key`` writes, else ``None``.

    The name must be one ``final_key`` could have produced (already a valid filename
    of at most 255 bytes): reconciliation treats anything else under the final prefix
    as foreign.
    """
    if not key.startswith(final_prefix):
        return None
    match = FINAL_KEY.fullmatch(key, len(final_prefix))
    if not match or _final_name(match[2]) != match[2]:
        return None
    return uuid.UUID(match[1])


# Slash-separated, non-empty segments, none of them "." or "..", no backslash or NUL:
# a key that is already its own normalised relative path.
CLEAN_KEY = re.compile(r"(?!\.\.?(?:/|\Z))[^/\\\x00]+(?:/(?!\.\.?(?:/|\Z))[^/\\\x00]+)*")


def validate_key(key: str, *prefixes: str) -> str:
    """Return ``key`` if it is a clean relative key under one of ``prefixes``.

    One compiled pattern: cleanup checks every key it deletes, millions per run.
    """
    if not isinstance(key, str) or not CLEAN_KEY.fullmatch(key):
        raise InvalidStorageKey(f"invalid storage key {key!r}")
    # Prefixes end with "/" and a clean key does not: a match is always longer.
    if not key.startswith(prefixes):
        raise InvalidStorageKey(f"storage key {key!r} is outside {', '.join(prefixes)}")
    return key
