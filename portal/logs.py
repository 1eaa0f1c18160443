"""The portal's loggers: standard-library logging, so the host's ``LOGGING`` decides where lines go.

``get_logger(__name__).info("cleanup.started", trigger="beat")`` logs a record whose
message is the event name and whose fields are record attributes (``extra``), as any
formatter that shows extras expects. Ids bound with ``structlog.contextvars`` (the
request's ``request_id``, a cleanup run's ``run_id``) are added to every record, so a
host without structlog sees them too. The app never configures logging itself: where
the host configured nothing, Python's last-resort handler prints warnings and errors
to stderr and stdout stays the commands' own.

A field named like a ``LogRecord`` attribute (``thread``, ``name``, ...) is renamed
with a trailing underscore (``thread_``) instead of failing the call.
"""

import logging

from structlog.contextvars import get_contextvars

RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class PortalLogger:
    """Keyword fields on a stdlib logger: ``log.info(event, **fields)``."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger):
        self._logger = logger

    def debug(self, event: str, **fields) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields) -> None:
        """An error with the traceback of the exception being handled."""
        self._log(logging.ERROR, event, fields, exc_info=True)

    def _log(self, level: int, event: str, fields: dict, exc_info: bool = False) -> None:
        if not self._logger.isEnabledFor(level):
            return
        extra = {
            (f"{key}_" if key in RESERVED else key): value
            for key, value in {**get_contextvars(), **fields}.items()
        }
        # stacklevel 3: the record names the portal module that called info() & co.
        self._logger.log(level, event, exc_info=exc_info, extra=extra, stacklevel=3)


def get_logger(name: str) -> PortalLogger:
    return PortalLogger(logging.getLogger(name))
