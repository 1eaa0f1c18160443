"""Every documented setting is read from the environment variable of the same name.

``manage.py`` runs in a subprocess, as a deployment starts it, because
django-configurations reads the environment once, when the settings load. Two
subprocesses serve every setting: one with each variable set to a value that is
not its default, one with none of them set.
"""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from portal.conf import DEFAULTS
from portal.models import OutboxEvent, UploadSession
from portal.services.cleanup import prune_old_failed_sessions, prune_outbox
from tests.factories import make_session
from tests.health.conftest import SilentServer

PROJECT_DIR = Path(__file__).resolve().parent.parent
MiB = 1024**2

# environment variable → (value set, setting value it must become)
OVERRIDES = {
    "PORTAL_MAX_FILE_SIZE": ("1073741824", 1073741824),
    "PORTAL_CHUNK_SIZE": (str(16 * MiB), 16 * MiB),
    "PORTAL_CHUNK_SIZE_MIN": (str(6 * MiB), 6 * MiB),
    "PORTAL_CHUNK_SIZE_MAX": (str(32 * MiB), 32 * MiB),
    "PORTAL_SESSION_TTL_HOURS": ("48", 48),
    "PORTAL_OUTBOX_BASE_DELAY_SECONDS": ("15", 15),
    "PORTAL_OUTBOX_MAX_DELAY_SECONDS": ("600", 600),
    "PORTAL_OUTBOX_MAX_ATTEMPTS": ("4", 4),
    "PORTAL_OUTBOX_CONNECT_TIMEOUT_SECONDS": ("1.5", 1.5),
    "PORTAL_OUTBOX_READ_TIMEOUT_SECONDS": ("20", 20.0),
    "PORTAL_OUTBOX_BATCH_SIZE": ("25", 25),
    "PORTAL_OUTBOX_CLAIM_LEASE_SECONDS": ("120", 120.0),
    "PORTAL_RUNNER_ENDPOINT": ("https://runner.test/events", "https://runner.test/events"),
    "PORTAL_RUNNER_AUTH_SECRET": ("runner-secret", "runner-secret"),
    "PORTAL_CLEANUP_ENABLED": ("false", False),
    "PORTAL_CLEANUP_DRY_RUN": ("true", True),
    "PORTAL_CLEANUP_INTERVAL_MINUTES": ("5", 5),
    "PORTAL_CLEANUP_DEEP_INTERVAL_MINUTES": ("720", 720),
    "PORTAL_CLEANUP_GRACE_MINUTES": ("45", 45),
    "PORTAL_CLEANUP_BATCH_SIZE": ("250", 250),
    "PORTAL_RETENTION_WORKERS": ("4", 4),
    "PORTAL_FAILED_SESSION_RETENTION_DAYS": ("0", 0),
    "PORTAL_OUTBOX_RETENTION_DAYS": ("3", 3),
    "PORTAL_READY_TIMEOUT_SECONDS": ("1.5", 1.5),
    "PORTAL_PART_IDLE_TIMEOUT_SECONDS": ("15", 15.0),
    "PORTAL_STORAGE_BACKEND": ("s3", "s3"),
    "PORTAL_STORAGE_ROOT": ("/srv/portal-storage", "/srv/portal-storage"),
    "PORTAL_STORAGE_DIRECT_IO": ("false", False),
    "PORTAL_TEMP_PREFIX": ("parts/", "parts/"),
    "PORTAL_FINAL_PREFIX": ("done/", "done/"),
    "PORTAL_CELERY_QUEUE": ("portal", "portal"),
    "PORTAL_OUTBOX_SWEEP_SECONDS": ("45", 45.0),
    "PORTAL_METRICS_ENABLED": ("false", False),
    "PORTAL_METRICS_WORKER_PORT": ("9100", 9100),
    "AWS_STORAGE_BUCKET_NAME": ("uploads-bucket", "uploads-bucket"),
    "AWS_S3_ENDPOINT_URL": ("http://minio.test:9000", "http://minio.test:9000"),
    "AWS_S3_REGION_NAME": ("eu-west-3", "eu-west-3"),
    "AWS_ACCESS_KEY_ID": ("AKIATESTKEY", "AKIATESTKEY"),
    "AWS_SECRET_ACCESS_KEY": ("secret-test-key", "secret-test-key"),
    "LOG_LEVEL": ("DEBUG", "DEBUG"),
    "LOG_FORMAT": ("json", "json"),
    "CELERY_BROKER_URL": ("redis://broker.test:6379/5", "redis://broker.test:6379/5"),
    "SECRET_KEY": ("a-secret-key-for-this-test", "a-secret-key-for-this-test"),
    "ALLOWED_HOSTS": ("a.test,b.test", ["a.test", "b.test"]),
    "DEBUG": ("true", True),
}
DATABASE_URL = "postgres://portal:pw@db.test:5433/portal_override"

PRINT_SETTINGS = (
    "import json; from django.conf import settings; "
    "print(json.dumps({n: getattr(settings, n) for n in dir(settings) if n.isupper()}, "
    "default=str))"
)


def manage(*args, configuration="Test", **environ) -> subprocess.CompletedProcess:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in OVERRIDES and name not in ("DATABASE_URL", "DJANGO_CONFIGURATION")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "boot.settings",
            "DJANGO_CONFIGURATION": configuration,
            **environ,
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def loaded_settings(configuration="Test", **environ) -> dict:
    result = manage("shell", "-c", PRINT_SETTINGS, configuration=configuration, **environ)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def defaults() -> dict:
    return loaded_settings()


@pytest.fixture(scope="module")
def overridden() -> dict:
    environ = {name: value for name, (value, _) in OVERRIDES.items()}
    return loaded_settings(DATABASE_URL=DATABASE_URL, **environ)


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_setting_is_read_from_the_variable_of_the_same_name(name, defaults, overridden):
    expected = OVERRIDES[name][1]

    assert overridden[name] == expected
    assert defaults[name] != expected  # so the variable, not the default, made the value


def test_database_url_sets_the_default_database(defaults, overridden):
    database = overridden["DATABASES"]["default"]

    assert (database["NAME"], database["HOST"], database["PORT"]) == (
        "portal_override",
        "db.test",
        5433,
    )
    assert defaults["DATABASES"]["default"]["NAME"] != "portal_override"


def test_every_portal_setting_is_covered(defaults):
    # A new PORTAL_* setting fails here until it gets an override case above.
    declared = {name for name in defaults if name.startswith("PORTAL_")}

    assert declared == {name for name in OVERRIDES if name.startswith("PORTAL_")}


def test_the_project_takes_every_portal_default_from_the_app():
    # boot/settings.py restates no value: with no variable set, Dev has the app's defaults.
    dev = loaded_settings(configuration="Dev")

    assert {name: dev[name] for name in DEFAULTS} == DEFAULTS


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "prune"),
    [
        ("PORTAL_FAILED_SESSION_RETENTION_DAYS", prune_old_failed_sessions),
        ("PORTAL_OUTBOX_RETENTION_DAYS", prune_outbox),
    ],
)
def test_zero_retention_keeps_everything(setting, prune, settings):
    # 0 means "keep forever" for every retention setting, never "prune at once".
    settings.PORTAL_CLEANUP_GRACE_MINUTES = 0
    long_ago = timezone.now() - timedelta(days=3650)
    make_session(status=UploadSession.Status.FAILED, finished_at=long_ago)
    OutboxEvent.objects.create(
        event_type="file.stored",
        payload={},
        aggregate_type="file",
        aggregate_id="old",
        idempotency_key="old",
        created_at=long_ago,
    )
    setattr(settings, setting, 0)

    assert prune().deleted == 0
    assert (UploadSession.objects.count(), OutboxEvent.objects.count()) == (1, 1)


def test_an_unparsable_value_stops_start_up_naming_the_variable():
    result = manage("check", PORTAL_SESSION_TTL_HOURS="abc")

    assert result.returncode != 0
    assert "PORTAL_SESSION_TTL_HOURS" in result.stderr
    assert "Traceback" not in result.stderr


def test_inconsistent_chunk_bounds_fail_the_system_check():
    result = manage("check", PORTAL_CHUNK_SIZE_MIN="9000000", PORTAL_CHUNK_SIZE_MAX="8000000")

    assert result.returncode != 0
    assert "portal.E001" in result.stderr
    assert "PORTAL_CHUNK_SIZE_MIN" in result.stderr
    assert "PORTAL_CHUNK_SIZE_MAX" in result.stderr


# -- database connection options (SPEC §2) -------------------------------------------


def database_options(url: str, configuration: str = "Test") -> dict:
    settings = loaded_settings(
        DATABASE_URL=url, DJANGO_CONFIGURATION=configuration, SECRET_KEY="x" * 50
    )
    return settings["DATABASES"]["default"]["OPTIONS"]


@pytest.mark.parametrize("configuration", ["Dev", "Test", "Production"])
def test_any_sqlite_url_gets_immediate_transactions_and_a_busy_timeout(tmp_path, configuration):
    options = database_options(f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}", configuration)

    assert options == {"transaction_mode": "IMMEDIATE", "timeout": 20}


def test_sqlite_options_set_in_the_url_are_kept(tmp_path):
    options = database_options(f"sqlite:///{tmp_path / 'x.sqlite3'}?timeout=3")

    assert options == {"transaction_mode": "IMMEDIATE", "timeout": 3}


def test_postgres_url_gets_a_bounded_connect_timeout_unless_it_sets_one():
    assert database_options(DATABASE_URL) == {"connect_timeout": 5}
    assert database_options(f"{DATABASE_URL}?connect_timeout=1") == {"connect_timeout": 1}


def test_production_postgres_borrows_connections_from_a_pool_other_configurations_do_not():
    options = database_options(DATABASE_URL, "Production")

    assert options["connect_timeout"] == 5
    assert {name: options["pool"][name] for name in ("min_size", "max_size", "timeout")} == {
        "min_size": 2,
        "max_size": 10,
        "timeout": 10,
    }
    assert "pool" not in database_options(DATABASE_URL, "Test")


def test_a_database_that_accepts_and_never_answers_fails_the_connect_instead_of_hanging():
    listener = SilentServer()
    try:
        url = f"postgres://portal:pw@127.0.0.1:{listener.port}/portal"
        # The default timeout, not one set in the URL: the subprocess' own timeout
        # (120 s) would stop a connect that hangs.
        result = manage(
            "shell",
            "-c",
            "from django.db import connection; connection.ensure_connection()",
            DATABASE_URL=url,
        )
    finally:
        listener.close()

    assert result.returncode != 0
    assert "OperationalError" in result.stderr
    assert listener.accepted  # it did reach the listener, which never answered
