"""Settings of the host project (django-configurations).

Every setting below is read from the environment variable of exactly the same
name. Pick a class with ``DJANGO_CONFIGURATION`` (``Dev``, ``Test``,
``Production``).
"""

from pathlib import Path

from configurations import Configuration
from corsheaders.defaults import default_headers, default_methods

from boot import env
from boot.logging import configure_structlog, logging_config
from portal import conf as portal_conf

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
# Every SQLite and PostgreSQL URL gets its engine's options from env.DATABASE_OPTIONS.
SQLITE_URL = f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"


# One environment variable per portal setting, with the app's own default.
PortalSettings = env.values_for(portal_conf.DEFAULTS)


class Base(PortalSettings, Configuration):
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
        "corsheaders",
        "portal",
    ]
    MIDDLEWARE = [
        # First: probes are answered before host validation and the HTTPS redirect.
        "portal.middleware.ProbeMiddleware",
        "portal.middleware.RequestIdMiddleware",
        # Before CommonMiddleware, so preflights and errors carry the CORS headers.
        "corsheaders.middleware.CorsMiddleware",
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

    # -- CORS for browser tus clients (django-cors-headers, SPEC §13) -------------
    # Origins allowed to upload over /uploads/tus/ from a browser, e.g.
    # CORS_ALLOWED_ORIGINS=https://app.example.org; empty: no cross-origin upload.
    CORS_ALLOWED_ORIGINS = env.ListValue([])
    CORS_URLS_REGEX = r"^/uploads/tus/"
    CORS_ALLOW_METHODS = (*default_methods, "HEAD")
    CORS_ALLOW_HEADERS = (*default_headers, *portal_conf.TUS_REQUEST_HEADERS)
    CORS_EXPOSE_HEADERS = portal_conf.TUS_RESPONSE_HEADERS
    CORS_PREFLIGHT_MAX_AGE = 86400

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

    # No persistent connections: under gunicorn's gevent workers (boot/gunicorn.conf.py)
    # every request is a greenlet of its own, and a persistent connection would be left
    # behind with each finished greenlet instead of being reused. A pool per worker
    # process instead: closing a connection (at the end of a request, or before an
    # upload body is read: chunks.release_connections) hands it back, so a request
    # starts no PostgreSQL backend of its own (~10 ms each, two per tus file; PEP 0024)
    # and the greenlets share at most max_size connections, each checked before use
    # (a restarted server's dead ones are replaced).
    DATABASES = env.DatabaseURLValue(
        SQLITE_URL,
        environ_name="DATABASE_URL",
        conn_max_age=0,
        conn_health_checks=True,  # with a pool: each connection checked as it is lent
        pool={"min_size": 2, "max_size": 10, "timeout": 10},  # timeout: waiting for one
    )
