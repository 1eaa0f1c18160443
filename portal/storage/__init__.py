"""Storage adapters behind one interface; ``get_storage()`` returns the configured one."""

from functools import cache

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from portal import conf
from portal.storage.base import DeleteResult, StorageAdapter, StoredObject

__all__ = ["DeleteResult", "StorageAdapter", "StoredObject", "build_storage", "get_storage"]


def build_storage(backend: str | None = None) -> StorageAdapter:
    """A new adapter for ``backend`` (default: ``PORTAL_STORAGE_BACKEND``)."""
    backend = backend or conf.storage_backend()
    if backend == "filesystem":
        from portal.storage.filesystem import FilesystemStorage

        return FilesystemStorage(
            root=conf.storage_root(),
            temp_prefix=conf.temp_prefix(),
            final_prefix=conf.final_prefix(),
            direct_io=conf.storage_direct_io(),
        )
    if backend == "s3":
        from portal.storage.s3 import S3Storage

        return S3Storage(temp_prefix=conf.temp_prefix(), final_prefix=conf.final_prefix())
    raise ImproperlyConfigured(
        f"PORTAL_STORAGE_BACKEND must be 'filesystem' or 's3', not {backend!r}."
    )


@cache
def get_storage() -> StorageAdapter:
    """The process-wide adapter (its S3 client and connection pool are reused)."""
    return build_storage()


def _reset_storage(*, setting, **kwargs):
    if setting.startswith(("PORTAL_STORAGE", "PORTAL_TEMP", "PORTAL_FINAL", "AWS_")):
        get_storage.cache_clear()


setting_changed.connect(_reset_storage)
