"""Settings of the host project (django-configurations).

Every setting below is read from the environment variable of exactly the same
name. Pick a class with ``DJANGO_CONFIGURATION`` (``Dev``, ``Test``,
``Production``).
"""

from datetime import timedelta
from pathlib import Path

from configurations import Configuration

from boot import env
from boot.logging import configure_structlog, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
# IMMEDIATE: a transaction takes SQLite's write lock when it begins, so concurrent
# writers (gunicorn threads, worker, beat) queue for up to `timeout` seconds instead of
# failing with "database is locked" when a reader upgrades to a writer mid-transaction.
SQLITE_URL = f"sqlite:///{VAR_DIR / 'portal.sqlite3'}?transaction_mode=IMMEDIATE&timeout=20"


class Base(Configuration):
    BASE_DIR = BASE_DIR

    SECRET_KEY = env.Value("insecure-development-key-change-me")
    DEBUG = env.BooleanValue(False)
    ALLOWED_HOSTS = env.ListValue(["localhost", "127.0.0.1", "[::1]"])

    INSTALLED_APPS = [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
        "django_celery_beat",
        "portal",
    ]
    MIDDLEWARE = [
        # First: probes are answered before host validation and the HTTPS redirect.
        "portal.middleware.ProbeMiddleware",
        "portal.middleware.RequestIdMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]
    ROOT_URLCONF = "boot.urls"
    WSGI_APPLICATION = "boot.wsgi.application"
    TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ]

    DATABASES = env.DatabaseURLValue(SQLITE_URL, environ_name="DATABASE_URL")
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    LANGUAGE_CODE = "en-us"
    TIME_ZONE = "UTC"
    USE_I18N = True
    USE_TZ = True
    STATIC_URL = "static/"
    STATIC_ROOT = VAR_DIR / "static"

    # -- portal (SPEC §2) -----------------------------------------------------
    PORTAL_MAX_FILE_SIZE = env.IntegerValue(5 * 1024**3)
    PORTAL_CHUNK_SIZE = env.IntegerValue(8 * 1024**2)
    PORTAL_CHUNK_SIZE_MIN = env.IntegerValue(5 * 1024**2)
    PORTAL_CHUNK_SIZE_MAX = env.IntegerValue(64 * 1024**2)
    PORTAL_SESSION_TTL_HOURS = env.IntegerValue(24)
    PORTAL_OUTBOX_BASE_DELAY_SECONDS = env.IntegerValue(30)
    PORTAL_OUTBOX_MAX_DELAY_SECONDS = env.IntegerValue(3600)
    PORTAL_OUTBOX_MAX_ATTEMPTS = env.IntegerValue(10)
    PORTAL_OUTBOX_CONNECT_TIMEOUT_SECONDS = env.FloatValue(3.05)
    PORTAL_OUTBOX_READ_TIMEOUT_SECONDS = env.FloatValue(10.0)
    PORTAL_OUTBOX_BATCH_SIZE = env.IntegerValue(100)
    PORTAL_OUTBOX_CLAIM_LEASE_SECONDS = env.FloatValue(60)
    PORTAL_RUNNER_ENDPOINT = env.Value("")
    PORTAL_RUNNER_AUTH_SECRET = env.Value("")
    PORTAL_CLEANUP_ENABLED = env.BooleanValue(True)
    PORTAL_CLEANUP_DRY_RUN = env.BooleanValue(False)
    # Fractions allowed (0.05 = every 3 s), for tests and demos of the beat schedule.
    PORTAL_CLEANUP_INTERVAL_MINUTES = env.FloatValue(10)
    PORTAL_CLEANUP_GRACE_MINUTES = env.IntegerValue(30)
    PORTAL_CLEANUP_BATCH_SIZE = env.IntegerValue(1000)
    PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES = env.FloatValue(360)  # retention: the deep cycle
    PORTAL_FAILED_SESSION_RETENTION_DAYS = env.IntegerValue(30)
    PORTAL_OUTBOX_RETENTION_DAYS = env.IntegerValue(7)
    PORTAL_READY_TIMEOUT_SECONDS = env.FloatValue(0.8)
    PORTAL_STORAGE_BACKEND = env.Value("filesystem")
    PORTAL_STORAGE_ROOT = env.Value(str(VAR_DIR / "storage"))
    PORTAL_TEMP_PREFIX = env.Value("tmp/")
    PORTAL_FINAL_PREFIX = env.Value("files/")

    # -- S3, with django-storages' own names ------------------------------------
    AWS_STORAGE_BUCKET_NAME = env.Value("")
    AWS_S3_ENDPOINT_URL = env.Value(None)
    AWS_S3_REGION_NAME = env.Value("us-east-1")
    AWS_ACCESS_KEY_ID = env.Value(None)
    AWS_SECRET_ACCESS_KEY = env.Value(None)

    # -- Celery ---------------------------------------------------------------
    # The filesystem transport needs no broker server: the default for one-command runs.
    CELERY_BROKER_URL = env.Value("filesystem://")
    CELERY_TASK_IGNORE_RESULT = True
    CELERY_TASK_ACKS_LATE = True
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
    CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

    def CELERY_BROKER_TRANSPORT_OPTIONS(self):
        if not str(self.CELERY_BROKER_URL).startswith("filesystem://"):
            return {}
        queue, control = VAR_DIR / "celery" / "queue", VAR_DIR / "celery" / "control"
        queue.mkdir(parents=True, exist_ok=True)
        control.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "control_folder": str(control),
        }

    def CELERY_BEAT_SCHEDULE(self):
        # DatabaseScheduler copies this into django-celery-beat's tables when beat
        # starts, so a changed interval setting reaches the database on restart.
        return {
            "portal-cleanup": {
                "task": "portal.tasks.portal_cleanup_task",
                "schedule": timedelta(minutes=self.PORTAL_CLEANUP_INTERVAL_MINUTES),
            },
            # Retention (SPEC §10): the storage sweep on its own, longer cycle.
            "portal-cleanup-deep": {
                "task": "portal.tasks.portal_cleanup_deep_task",
                "schedule": timedelta(minutes=self.PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES),
            },
            "portal-dispatch-outbox": {
                "task": "portal.tasks.dispatch_outbox_task",
                "schedule": timedelta(seconds=30),
            },
        }

    # -- logging --------------------------------------------------------------
    LOG_LEVEL = env.Value("INFO")
    LOG_FORMAT = env.Value("console")

    def LOGGING(self):
        return logging_config(level=self.LOG_LEVEL, fmt=self.LOG_FORMAT)

    @classmethod
    def post_setup(cls):
        super().post_setup()
        configure_structlog()


class Dev(Base):
    DEBUG = env.BooleanValue(True)


class Test(Base):
    CELERY_BROKER_URL = env.Value("memory://")
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    PORTAL_STORAGE_ROOT = env.Value(str(VAR_DIR / "test-storage"))
    LOG_LEVEL = env.Value("WARNING")


class Production(Base):
    SECRET_KEY = env.SecretValue()
    ALLOWED_HOSTS = env.ListValue([])
    PORTAL_STORAGE_BACKEND = env.Value("s3")
    LOG_FORMAT = env.Value("json")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.BooleanValue(True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.IntegerValue(0)
    SECURE_CONTENT_TYPE_NOSNIFF = True

    # Reuse connections; Django pings a reused one before handing it out.
    DATABASES = env.DatabaseURLValue(
        SQLITE_URL, environ_name="DATABASE_URL", conn_max_age=60, conn_health_checks=True
    )
