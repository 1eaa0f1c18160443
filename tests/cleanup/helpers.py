"""Helpers shared by the cleanup tests."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from portal.storage import DeleteResult

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
TTL = timedelta(hours=24)
GRACE = timedelta(minutes=30)


def temp_keys(storage) -> set[str]:
    """Every object under the adapter's temp prefix, whatever its age."""
    return {
        obj.key
        for obj in storage.iter_temp_objects(older_than=timezone.now() + timedelta(days=3650))
    }


class RefusingStorage:
    """A real adapter that refuses to delete some keys, as a storage outage would."""

    def __init__(self, storage, refuse):
        self._storage = storage
        self._refuse = refuse  # key -> bool

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def delete_many(self, keys):
        keys = list(keys)
        result = self._storage.delete_many(key for key in keys if not self._refuse(key))
        refused = {key: "SlowDown" for key in keys if self._refuse(key)}
        return DeleteResult(deleted=result.deleted, errors={**result.errors, **refused})
