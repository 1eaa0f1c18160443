"""Helpers the benchmark scripts share."""

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def scratch_database(url: str, *, suffix: str, create: bool) -> str:
    """Drop (and with ``create``, create anew) the database ``<url's name>_<suffix>``.

    Returns its URL. The server is the one ``url`` names; the database it names
    need not exist.
    """
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_{suffix}"
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            admin.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def scratch_directory(prefix: str, under: Path | None = None) -> Path:
    """A new directory under ``under``, by default the project's ``var/`` (ignored by
    git), made on a clean clone too.

    On the project's disk rather than /tmp, so the storage figures are of that disk.
    """
    under = under or Path(__file__).resolve().parent.parent / "var"
    under.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=under))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def setup_django(log_file):
    """Set Django up in a benchmark's child process, its log lines (stderr) to ``log_file``."""
    log = open(log_file, "a")  # noqa: SIM115 - stays open for the process's lifetime
    os.dup2(log.fileno(), sys.stderr.fileno())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
    import configurations

    configurations.setup()


def migrated_scratch_database(suffix: str) -> None:
    """Point ``DATABASE_URL`` at a fresh, migrated ``<name>_<suffix>``, production-like.

    DEBUG is off as in production: with it on, Django keeps every query in memory.
    """
    os.environ["DATABASE_URL"] = scratch_database(
        os.environ["DATABASE_URL"], suffix=suffix, create=True
    )
    os.environ.update(
        DJANGO_CONFIGURATION="Dev", DEBUG="false", LOG_FORMAT="json", LOG_LEVEL="INFO"
    )
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parent.parent / "manage.py"),
            "migrate",
            "-v0",
        ],
        check=True,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
