"""Errors the portal raises. Callers translate them (HTTP status, CommandError, admin message)."""


class PortalError(Exception):
    """Base of every error the portal raises on purpose."""


class StorageError(PortalError):
    """A storage operation failed for good: retrying the same request will not help.

    ``status``/``code``/``public_message`` are what an API client is told (no key,
    host or exception text: those go to the log).
    """

    status = 500
    code = "storage_error"
    public_message = "Storage refused the operation; retrying will not help."


class ObjectMissing(StorageError):
    """The object ``key`` does not exist."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


class StorageUnavailable(StorageError):
    """The storage backend could not be reached or failed: worth retrying later."""

    status = 503
    code = "storage_unavailable"
    public_message = "Storage is unavailable; retry later."


class InvalidStorageKey(StorageError):
    """A key is outside the adapter's temp or final root/prefix."""


class PartTooLarge(StorageError):
    """A streamed part was longer than allowed; nothing was kept."""


class UploadRejected(PortalError):
    """The upload API refuses a request; ``status`` is its HTTP status, ``code`` is stable.

    ``details`` carries extra machine-readable fields (e.g. ``missing_parts``).
    """

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, **details):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class AuthenticationFailed(UploadRejected):
    status = 401
    code = "unauthorized"


class NotFound(UploadRejected):
    status = 404
    code = "not_found"


class Conflict(UploadRejected):
    """The request contradicts the session's state (part differs, parts missing, complete)."""

    status = 409
    code = "conflict"


class SessionGone(UploadRejected):
    """The session is failed, aborted or past its TTL: no further writes."""

    status = 410
    code = "session_gone"


class LengthRequired(UploadRejected):
    status = 411
    code = "length_required"


class TooLarge(UploadRejected):
    status = 413
    code = "too_large"


class ChecksumMismatch(UploadRejected):
    status = 422
    code = "checksum_mismatch"


# -- retention (SPEC §10) -----------------------------------------------------------


class InvalidRetentionClass(UploadRejected):
    """``retention_class`` names no retention policy."""

    status = 400
    code = "invalid_retention_class"


class RetentionRefused(PortalError):
    """A retention operation cannot be done to this file or policy now (``code`` says why)."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code
