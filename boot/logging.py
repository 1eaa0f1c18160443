"""One logging configuration for Django, Celery and the portal: structlog over stdlib.

``LOG_FORMAT=json`` renders one JSON object per line; ``console`` renders
readable coloured lines for development.
"""

import logging.config

import structlog

SHARED_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_config(*, level: str = "INFO", fmt: str = "console") -> dict:
    """The stdlib ``LOGGING`` dict; every record, structlog or not, goes through structlog."""
    if fmt == "json":
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=False)]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": SHARED_PROCESSORS,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *renderer,
                ],
            },
        },
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "structlog"},
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "botocore": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
        },
    }


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def apply(config: dict) -> None:
    """Install ``config`` (used by Celery, which would otherwise set up its own handlers)."""
    logging.config.dictConfig(config)
