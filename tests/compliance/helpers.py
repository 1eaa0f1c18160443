"""Helpers of the compliance tests: objects planted in storage behind the portal's back."""

from pathlib import Path

from portal.storage import keys


def plant(storage, key: str, body: bytes = b"x") -> str:
    """Write ``key`` straight into storage, as a restore, a backup tool or a host would."""
    if storage.backend == "filesystem":
        path = Path(storage.root) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    else:
        storage.client.put_object(Bucket=storage.bucket, Key=key, Body=body)
    return key


def own_key(storage, file_id, name="lost.pdf") -> str:
    return keys.final_key(storage.final_prefix, file_id, name)


FOREIGN_NAMES = (
    "backup-2026.tar",  # directly under the prefix
    "not-a-uuid/report.pdf",  # a folder that is no file id
    "0190a0b0-0000-7000-8000-00000000000A/x.pdf",  # upper-case hex: not str(uuid)
    "0190a0b0-0000-7000-8000-000000000001/nested/x.pdf",  # deeper than final_key writes
    "0190a0b0-0000-7000-8000-000000000002/has space.pdf",  # a name final_key would change
)


def plant_foreign(storage) -> list[str]:
    return [plant(storage, storage.final_prefix + name) for name in FOREIGN_NAMES]
