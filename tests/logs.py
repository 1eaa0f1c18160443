"""Reading portal log records in tests: the event name and the fields of each record."""

import logging

STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def event_of(record: logging.LogRecord) -> dict:
    """``{"event": ..., **fields}`` of a portal (stdlib) record or a structlog one."""
    if isinstance(record.msg, dict):  # structlog's own loggers, through boot's configuration
        return record.msg
    fields = {key: value for key, value in vars(record).items() if key not in STANDARD}
    return {"event": record.getMessage(), **fields}
