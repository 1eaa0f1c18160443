"""System checks of the portal's settings (``portal.E0NN``; ids are never reused).

Each check reads settings through ``portal.conf``, never raises and never
touches the network or the database.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks

from portal import conf
from portal.schemas import MAX_PARTS

# S3 refuses multipart parts under 5 MiB (all but the last).
S3_MIN_PART_SIZE = 5 * 1024**2


def _error(msg, hint, id_):
    return checks.Error(msg, hint=hint, id=id_)


@checks.register(checks.Tags.compatibility)
def check_chunk_bounds(app_configs=None, **kwargs):
    low, high, default = conf.chunk_size_min(), conf.chunk_size_max(), conf.chunk_size()
    if low > high:
        return [
            _error(
                f"PORTAL_CHUNK_SIZE_MIN ({low}) is larger than PORTAL_CHUNK_SIZE_MAX ({high}).",
                "Lower PORTAL_CHUNK_SIZE_MIN or raise PORTAL_CHUNK_SIZE_MAX.",
                "portal.E001",
            )
        ]
    if not low <= default <= high:
        return [
            _error(
                f"PORTAL_CHUNK_SIZE ({default}) is outside PORTAL_CHUNK_SIZE_MIN ({low}) "
                f"and PORTAL_CHUNK_SIZE_MAX ({high}).",
                "Set PORTAL_CHUNK_SIZE between the two bounds.",
                "portal.E002",
            )
        ]
    return []


@checks.register(checks.Tags.compatibility)
def check_max_file_size(app_configs=None, **kwargs):
    size, high = conf.max_file_size(), conf.chunk_size_max()
    if size <= 0:
        return [
            _error(
                f"PORTAL_MAX_FILE_SIZE ({size}) must be positive.",
                "Set PORTAL_MAX_FILE_SIZE to the largest file size in bytes.",
                "portal.E003",
            )
        ]
    if high > 0 and -(-size // high) > MAX_PARTS:
        return [
            _error(
                f"PORTAL_MAX_FILE_SIZE ({size}) needs more than {MAX_PARTS} parts at "
                f"PORTAL_CHUNK_SIZE_MAX ({high}).",
                "Lower PORTAL_MAX_FILE_SIZE or raise PORTAL_CHUNK_SIZE_MAX.",
                "portal.E003",
            )
        ]
    return []


# setting name → (smallest allowed value, check id)
POSITIVE_SETTINGS = {
    "PORTAL_SESSION_TTL_HOURS": (1, "portal.E004"),
    "PORTAL_CLEANUP_BATCH_SIZE": (1, "portal.E005"),
    "PORTAL_CHUNK_SIZE_MIN": (1, "portal.E008"),
    "PORTAL_OUTBOX_BASE_DELAY_SECONDS": (1, "portal.E008"),
    "PORTAL_OUTBOX_MAX_DELAY_SECONDS": (1, "portal.E008"),
    "PORTAL_OUTBOX_MAX_ATTEMPTS": (1, "portal.E008"),
    "PORTAL_OUTBOX_CONNECT_TIMEOUT_SECONDS": (0.01, "portal.E008"),
    "PORTAL_OUTBOX_READ_TIMEOUT_SECONDS": (0.01, "portal.E008"),
    "PORTAL_OUTBOX_BATCH_SIZE": (1, "portal.E008"),
    "PORTAL_OUTBOX_CLAIM_LEASE_SECONDS": (1, "portal.E008"),
    "PORTAL_CLEANUP_INTERVAL_MINUTES": (0.05, "portal.E008"),  # 3 s
    "PORTAL_CLEANUP_GRACE_MINUTES": (0, "portal.E008"),
    "PORTAL_FAILED_SESSION_RETENTION_DAYS": (0, "portal.E008"),
    "PORTAL_OUTBOX_RETENTION_DAYS": (0, "portal.E008"),
    "PORTAL_READY_TIMEOUT_SECONDS": (0.05, "portal.E008"),
    "PORTAL_OUTBOX_SWEEP_SECONDS": (1, "portal.E030"),
    "PORTAL_PART_IDLE_TIMEOUT_SECONDS": (0.1, "portal.E020"),
    # Retention (SPEC §10).
    "PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES": (0.05, "portal.E060"),
    "PORTAL_RETENTION_WORKERS": (1, "portal.E061"),
}


@checks.register(checks.Tags.compatibility)
def check_numeric_ranges(app_configs=None, **kwargs):
    errors = []
    for name, (minimum, id_) in POSITIVE_SETTINGS.items():
        value = conf.get(name)
        if value < minimum:
            errors.append(
                _error(
                    f"{name} ({value}) must be at least {minimum}.",
                    f"Set {name} to {minimum} or more.",
                    id_,
                )
            )
    return errors


@checks.register(checks.Tags.compatibility)
def check_runner_endpoint(app_configs=None, **kwargs):
    endpoint = conf.runner_endpoint()
    if not endpoint:
        return []
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [
            _error(
                f"PORTAL_RUNNER_ENDPOINT ({endpoint!r}) is not an http(s) URL.",
                "Use a full URL such as https://runner.example/events, or leave it empty.",
                "portal.E006",
            )
        ]
    if not conf.runner_auth_secret():
        message = "PORTAL_RUNNER_ENDPOINT is set but PORTAL_RUNNER_AUTH_SECRET is empty."
        hint = "Set PORTAL_RUNNER_AUTH_SECRET so the runner can verify deliveries."
        # Unsigned deliveries are tolerable while developing, never in production.
        if settings.DEBUG:
            return [checks.Warning(message, hint=hint, id="portal.W001")]
        return [_error(message, hint, "portal.E007")]
    return []


@checks.register(checks.Tags.compatibility)
def check_storage(app_configs=None, **kwargs):
    backend = conf.storage_backend()
    if backend not in ("filesystem", "s3"):
        return [
            _error(
                f"PORTAL_STORAGE_BACKEND ({backend!r}) must be 'filesystem' or 's3'.",
                "Set PORTAL_STORAGE_BACKEND to filesystem or s3.",
                "portal.E009",
            )
        ]
    errors = []
    temp, final = conf.temp_prefix().strip("/"), conf.final_prefix().strip("/")
    if not temp or not final or temp == final or ".." in f"{temp}/{final}".split("/"):
        errors.append(
            _error(
                f"PORTAL_TEMP_PREFIX ({conf.temp_prefix()!r}) and PORTAL_FINAL_PREFIX "
                f"({conf.final_prefix()!r}) must be distinct, non-empty relative prefixes.",
                "Use e.g. tmp/ and files/.",
                "portal.E010",
            )
        )
    if backend == "s3":
        if not conf.s3_bucket():
            errors.append(
                _error(
                    "PORTAL_STORAGE_BACKEND is 's3' but AWS_STORAGE_BUCKET_NAME is empty.",
                    "Set AWS_STORAGE_BUCKET_NAME.",
                    "portal.E011",
                )
            )
        if conf.chunk_size_min() < S3_MIN_PART_SIZE:
            errors.append(
                _error(
                    f"PORTAL_CHUNK_SIZE_MIN ({conf.chunk_size_min()}) is below S3's multipart "
                    f"minimum of {S3_MIN_PART_SIZE} bytes.",
                    "Raise PORTAL_CHUNK_SIZE_MIN to 5242880 or more when using S3.",
                    "portal.E012",
                )
            )
    return errors


@checks.register(checks.Tags.compatibility)
def check_prefixes_not_nested(app_configs=None, **kwargs):
    """The storage sweep lists everything under the temp prefix: a final prefix inside it
    (or around it) would put stored files in the sweep's path."""
    temp, final = conf.temp_prefix().strip("/") + "/", conf.final_prefix().strip("/") + "/"
    if (
        temp == "/"
        or final == "/"
        or temp == final
        or (not temp.startswith(final) and not final.startswith(temp))
    ):
        return []  # empty or equal prefixes are portal.E010's concern
    return [
        _error(
            f"PORTAL_TEMP_PREFIX ({conf.temp_prefix()!r}) and PORTAL_FINAL_PREFIX "
            f"({conf.final_prefix()!r}) are nested: one lies inside the other.",
            "Use two sibling prefixes, e.g. tmp/ and files/.",
            "portal.E013",
        )
    ]


# Below this, object ages (the storage's clock) and session times (the portal's clock)
# are too close for the clock skew between hosts.
SAFE_GRACE_MINUTES = 5


@checks.register(checks.Tags.compatibility)
def check_grace_floor(app_configs=None, **kwargs):
    grace = conf.get("PORTAL_CLEANUP_GRACE_MINUTES")
    if not 0 <= grace < SAFE_GRACE_MINUTES:
        return []  # a negative value is portal.E008's concern
    return [
        checks.Warning(
            f"PORTAL_CLEANUP_GRACE_MINUTES ({grace}) is below {SAFE_GRACE_MINUTES} minutes: "
            "object ages come from the storage's clock and session times from this host's, "
            "so clock skew can make a just-finished session's parts look old enough to delete.",
            hint=f"Set PORTAL_CLEANUP_GRACE_MINUTES to {SAFE_GRACE_MINUTES} or more.",
            id="portal.W002",
        )
    ]


@checks.register(checks.Tags.compatibility)
def check_celery_wiring(app_configs=None, **kwargs):
    """The host runs portal tasks: a Celery app to send them with, beat's tables for the schedule."""
    from django.apps import apps

    from portal.tasks import celery_app_configured

    warnings = []
    if not celery_app_configured():
        warnings.append(
            checks.Warning(
                "No Celery app is configured: the portal sends no task (the dispatch kick is "
                "skipped, the admin cannot queue cleanup) instead of publishing to Celery's "
                "default broker.",
                hint="Create a Celery app in your project and import it from the package "
                "that holds settings (Celery's 'First steps with Django').",
                id="portal.W010",
            )
        )
    if not apps.is_installed("django_celery_beat"):
        warnings.append(
            checks.Warning(
                "django_celery_beat is not in INSTALLED_APPS: the portal's periodic tasks "
                "(cleanup, outbox sweep) are not scheduled.",
                hint='Add "django_celery_beat" to INSTALLED_APPS and run beat with '
                "--scheduler django_celery_beat.schedulers:DatabaseScheduler.",
                id="portal.W011",
            )
        )
    return warnings


# -- metrics (SPEC §12) --------------------------------------------------------------


@checks.register(checks.Tags.compatibility)
def check_metrics_worker_port(app_configs=None, **kwargs):
    port = conf.metrics_worker_port()
    if not 0 <= port <= 65535:
        return [
            _error(
                f"PORTAL_METRICS_WORKER_PORT ({port}) must be a TCP port, or 0 to serve none.",
                "Set PORTAL_METRICS_WORKER_PORT between 0 and 65535.",
                "portal.E040",
            )
        ]
    return []


@checks.register(checks.Tags.compatibility, deploy=True)
def check_metrics_multiprocess(app_configs=None, **kwargs):
    if conf.metrics_enabled() and not conf.metrics_multiprocess_dir():
        return [
            checks.Warning(
                "PORTAL_METRICS_ENABLED is on but PROMETHEUS_MULTIPROC_DIR is not set: each "
                "process would count alone, and a Celery worker serves no metrics.",
                hint="Set PROMETHEUS_MULTIPROC_DIR to a writable directory of its own for each "
                "server (boot/gunicorn.conf.py makes one for the web server when unset).",
                id="portal.W020",
            )
        ]
    return []
