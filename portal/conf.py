"""The portal's settings, with their defaults.

This is the only module of the app that reads ``PORTAL_*`` settings, and
``DEFAULTS`` is the only place that states their defaults: a host project sets
the ones it changes (``boot/settings.py`` reads an environment variable for every
name here, typed like its default, and restates no value). Values are read at
call time, so ``override_settings`` in tests and a host project's own
configuration both take effect without a restart of the app.

Retention settings (``*_RETENTION_DAYS``): 0 means "keep forever" (that pruning
is off), never "prune at once".
"""

import os
from datetime import timedelta
from pathlib import Path

from django.conf import settings

DEFAULTS = {
    "PORTAL_MAX_FILE_SIZE": 5 * 1024**3,
    "PORTAL_CHUNK_SIZE": 8 * 1024**2,
    "PORTAL_CHUNK_SIZE_MIN": 5 * 1024**2,
    "PORTAL_CHUNK_SIZE_MAX": 64 * 1024**2,
    "PORTAL_SESSION_TTL_HOURS": 24,
    "PORTAL_OUTBOX_BASE_DELAY_SECONDS": 30,
    "PORTAL_OUTBOX_MAX_DELAY_SECONDS": 3600,
    "PORTAL_OUTBOX_MAX_ATTEMPTS": 10,
    "PORTAL_RUNNER_ENDPOINT": "",
    "PORTAL_RUNNER_AUTH_SECRET": "",
    "PORTAL_CLEANUP_ENABLED": True,
    "PORTAL_CLEANUP_DRY_RUN": False,
    "PORTAL_CLEANUP_INTERVAL_MINUTES": 10.0,  # fractions allowed (0.05 = every 3 s)
    "PORTAL_CLEANUP_GRACE_MINUTES": 30,
    "PORTAL_CLEANUP_BATCH_SIZE": 1000,
    # Database connections each retention step works on at once (PostgreSQL).
    "PORTAL_RETENTION_WORKERS": 2,
    "PORTAL_FAILED_SESSION_RETENTION_DAYS": 30,
    "PORTAL_OUTBOX_RETENTION_DAYS": 7,
    "PORTAL_READY_TIMEOUT_SECONDS": 0.8,
    "PORTAL_PART_IDLE_TIMEOUT_SECONDS": 60.0,
    "PORTAL_STORAGE_BACKEND": "filesystem",
    "PORTAL_STORAGE_ROOT": "var/storage",
    # Filesystem files written and read around the page cache (O_DIRECT).
    "PORTAL_STORAGE_DIRECT_IO": True,
    "PORTAL_TEMP_PREFIX": "tmp/",
    "PORTAL_FINAL_PREFIX": "files/",
    # The Celery queue of every portal task; "" = the Celery app's default queue.
    "PORTAL_CELERY_QUEUE": "",
    # How often beat sweeps the outbox for deliveries whose kick was lost or retry is due.
    "PORTAL_OUTBOX_SWEEP_SECONDS": 30.0,
    # Retention (SPEC §10): the storage sweep's own, longer cycle.
    "PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES": 360.0,
    # Not in the public table: transport knobs with safe defaults.
    "PORTAL_OUTBOX_CONNECT_TIMEOUT_SECONDS": 3.05,
    "PORTAL_OUTBOX_READ_TIMEOUT_SECONDS": 10.0,
    "PORTAL_OUTBOX_BATCH_SIZE": 100,
    "PORTAL_OUTBOX_CLAIM_LEASE_SECONDS": 60.0,
    # -- metrics (SPEC §12) --
    "PORTAL_METRICS_ENABLED": True,
    "PORTAL_METRICS_WORKER_PORT": 9808,
}


def get(name):
    """Return the setting ``name``, falling back to the portal's default."""
    return getattr(settings, name, DEFAULTS[name])


def max_file_size() -> int:
    return int(get("PORTAL_MAX_FILE_SIZE"))


def chunk_size() -> int:
    return int(get("PORTAL_CHUNK_SIZE"))


def chunk_size_min() -> int:
    return int(get("PORTAL_CHUNK_SIZE_MIN"))


def chunk_size_max() -> int:
    return int(get("PORTAL_CHUNK_SIZE_MAX"))


def session_ttl() -> timedelta:
    return timedelta(hours=get("PORTAL_SESSION_TTL_HOURS"))


def outbox_base_delay() -> timedelta:
    return timedelta(seconds=get("PORTAL_OUTBOX_BASE_DELAY_SECONDS"))


def outbox_max_delay() -> timedelta:
    return timedelta(seconds=get("PORTAL_OUTBOX_MAX_DELAY_SECONDS"))


def outbox_max_attempts() -> int:
    return int(get("PORTAL_OUTBOX_MAX_ATTEMPTS"))


def outbox_timeouts() -> tuple[float, float]:
    """(connect, read) timeouts of one webhook delivery, for requests."""
    return (
        float(get("PORTAL_OUTBOX_CONNECT_TIMEOUT_SECONDS")),
        float(get("PORTAL_OUTBOX_READ_TIMEOUT_SECONDS")),
    )


def outbox_batch_size() -> int:
    return int(get("PORTAL_OUTBOX_BATCH_SIZE"))


def outbox_claim_lease() -> timedelta:
    """How long a dispatcher's claim holds its deliveries before another may take them."""
    return timedelta(seconds=float(get("PORTAL_OUTBOX_CLAIM_LEASE_SECONDS")))


def runner_endpoint() -> str:
    return get("PORTAL_RUNNER_ENDPOINT")


def runner_auth_secret() -> str:
    return get("PORTAL_RUNNER_AUTH_SECRET")


def cleanup_enabled() -> bool:
    return bool(get("PORTAL_CLEANUP_ENABLED"))


def cleanup_dry_run() -> bool:
    return bool(get("PORTAL_CLEANUP_DRY_RUN"))


def cleanup_interval() -> timedelta:
    return timedelta(minutes=float(get("PORTAL_CLEANUP_INTERVAL_MINUTES")))


def cleanup_grace() -> timedelta:
    return timedelta(minutes=get("PORTAL_CLEANUP_GRACE_MINUTES"))


def cleanup_batch_size() -> int:
    return int(get("PORTAL_CLEANUP_BATCH_SIZE"))


def retention_workers() -> int:
    return int(get("PORTAL_RETENTION_WORKERS"))


def failed_session_retention() -> timedelta | None:
    """Age after which failed/aborted sessions are pruned; None when pruning is off."""
    days = get("PORTAL_FAILED_SESSION_RETENTION_DAYS")
    return timedelta(days=days) if days else None


def outbox_retention() -> timedelta | None:
    """Age after which delivered events are pruned; None (0 days) when pruning is off."""
    days = get("PORTAL_OUTBOX_RETENTION_DAYS")
    return timedelta(days=days) if days else None


def ready_timeout() -> float:
    return float(get("PORTAL_READY_TIMEOUT_SECONDS"))


def part_idle_timeout() -> float:
    """Seconds a request body may send nothing before it is abandoned."""
    return float(get("PORTAL_PART_IDLE_TIMEOUT_SECONDS"))


def storage_backend() -> str:
    return get("PORTAL_STORAGE_BACKEND")


def storage_root() -> Path:
    return Path(get("PORTAL_STORAGE_ROOT")).resolve()


def storage_direct_io() -> bool:
    return bool(get("PORTAL_STORAGE_DIRECT_IO"))


def temp_prefix() -> str:
    return get("PORTAL_TEMP_PREFIX")


def final_prefix() -> str:
    return get("PORTAL_FINAL_PREFIX")


def celery_queue() -> str | None:
    """The queue portal tasks are sent to; None leaves it to the Celery app's default."""
    return get("PORTAL_CELERY_QUEUE") or None


def outbox_sweep_interval() -> timedelta:
    return timedelta(seconds=float(get("PORTAL_OUTBOX_SWEEP_SECONDS")))


def s3_bucket() -> str:
    return getattr(settings, "AWS_STORAGE_BUCKET_NAME", None) or ""


# -- metrics (SPEC §12) -------------------------------------------------------------


def metrics_enabled() -> bool:
    """Whether ``/metrics`` answers (and Celery workers serve their counters)."""
    return bool(get("PORTAL_METRICS_ENABLED"))


def metrics_worker_port() -> int:
    """Port on which a Celery worker serves its counters; 0 turns that off."""
    return int(get("PORTAL_METRICS_WORKER_PORT"))


def metrics_multiprocess_dir() -> str:
    """prometheus-client's own variable: where each process of a server writes its counters.

    Read from the environment, not settings: the library reads it there when imported.
    """
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


# -- tus (SPEC §13) -----------------------------------------------------------
# Protocol constants, not settings: a host's CORS configuration (django-cors-headers'
# CORS_ALLOW_HEADERS / CORS_EXPOSE_HEADERS) lets browsers send and read exactly these.
TUS_REQUEST_HEADERS = (
    "tus-resumable",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-checksum",
    "upload-concat",
    "x-request-id",
)
TUS_RESPONSE_HEADERS = (
    "Location",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Concat",
    "X-Request-ID",
)


# -- retention (SPEC §10) ---------------------------------------------------------


def cleanup_deep_interval() -> timedelta:
    """Beat interval of the deep cycle (the storage sweep)."""
    return timedelta(minutes=float(get("PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES")))
