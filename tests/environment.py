"""Which real services this machine offers the tests, and how to reach them.

Tests that need PostgreSQL, Redis or S3 skip with a reason when the service is
missing, except under ``CI=true``, where a missing service fails the test.
"""

import os
import socket
import threading
from contextlib import contextmanager
from functools import cache
from urllib.parse import urlsplit

import pytest
from django.db import connection, transaction

REDIS_URL = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, reason: str) -> None:
    if available:
        return
    if in_ci():
        pytest.fail(f"{reason} (required when CI=true)", pytrace=False)
    pytest.skip(reason)


def uses_postgres() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def row_locked(queryset):
    """The rows of ``queryset`` held ``SELECT … FOR UPDATE`` by another connection (a
    thread's) while the block runs, as a concurrent worker would hold them."""
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                list(queryset.select_for_update())
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10), "the rows could not be locked"
    try:
        yield
    finally:
        release.set()
        holder.join()


@cache
def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_available() -> bool:
    parts = urlsplit(REDIS_URL)
    return port_open(parts.hostname or "127.0.0.1", parts.port or 6379)


def table_write_count(model, counter: str) -> int:
    """A PostgreSQL counter of this transaction's writes to ``model``'s table
    (``pg_stat_get_xact_<counter>``, e.g. ``tuples_hot_updated``)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_stat_get_xact_{counter}(%s::regclass)", [model._meta.db_table])
        return cursor.fetchone()[0]
