"""Errors the portal raises. Callers translate them (HTTP status, CommandError, admin message)."""


class PortalError(Exception):
    """Base of every error the portal raises on purpose."""


class StorageError(PortalError):
    """A storage operation failed."""


class ObjectMissing(StorageError):
    """The object does not exist."""


class StorageUnavailable(StorageError):
    """The storage backend could not be reached or refused the operation."""


class InvalidStorageKey(StorageError):
    """A key is outside the adapter's temp or final root/prefix."""


class PartTooLarge(StorageError):
    """A streamed part was longer than allowed; nothing was kept."""
