"""Key construction and validation shared by every adapter."""

import re
import uuid

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


def final_key(final_prefix: str, file_id, filename: str) -> str:
    return f"{final_prefix}{file_id}/{_final_name(filename)}"


def _final_name(filename: str) -> str:
    try:
        return get_valid_filename(filename)
    except SuspiciousFileOperation:  # nothing usable left, e.g. "." or "..."
        return "file"


# ``final_key``'s shape after the prefix: a canonical file id, one name segment.
FINAL_KEY = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/([^/]+)")


def final_key_file_id(final_prefix: str, key: str) -> uuid.UUID | None:
    """The file id of a key of exactly the shape ``final_key`` writes, else ``None``.

    The name must be one ``final_key`` could have produced (already a valid filename):
    reconciliation treats anything else under the final prefix as foreign.
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
