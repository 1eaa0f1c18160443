"""Helpers shared by the cleanup tests."""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from portal.models import UploadFile, UploadPart, UploadSession, new_id
from portal.storage import DeleteResult, keys

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
TTL = timedelta(hours=24)
GRACE = timedelta(minutes=30)


def temp_keys(storage) -> set[str]:
    """Every object under the adapter's temp prefix, whatever its age."""
    return {
        obj.key
        for obj in storage.iter_temp_objects(older_than=timezone.now() + timedelta(days=3650))
    }


class RefusingStorage:
    """A real adapter that refuses to delete some keys, as a storage outage would."""

    def __init__(self, storage, refuse):
        self._storage = storage
        self._refuse = refuse  # key -> bool

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def delete_many(self, keys):
        keys = list(keys)
        result = self._storage.delete_many(key for key in keys if not self._refuse(key))
        refused = {key: "SlowDown" for key in keys if self._refuse(key)}
        return DeleteResult(deleted=result.deleted, errors={**result.errors, **refused})


def database_url() -> str:
    """The URL of the database the tests use (pytest-django's test_<name> database)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def bulk_sessions(*, user, count, status, parts=0, last_activity_at, finished_at=None, root=None):
    """``count`` sessions with ``parts`` parts each, created with bulk inserts.

    With ``root`` (a filesystem storage root) every part's object is created too,
    empty, with plain ``os`` calls: fast enough for tens of thousands.
    """
    files, sessions, part_rows = [], [], []
    for _ in range(count):
        upload_file = UploadFile(
            id=new_id(), original_filename="f.bin", size_bytes=16 * max(parts, 1), uploaded_by=user
        )
        session = UploadSession(
            id=new_id(),
            file=upload_file,
            created_by=user,
            status=status,
            chunk_size_bytes=16,
            total_size_bytes=16 * max(parts, 1),
            total_parts=max(parts, 1),
            completed_parts=parts,
            last_activity_at=last_activity_at,
            finished_at=finished_at,
        )
        files.append(upload_file)
        sessions.append(session)
        for number in range(1, parts + 1):
            key = keys.temp_part_key("tmp/", session.pk, number)
            part_rows.append(
                UploadPart(
                    session=session,
                    part_number=number,
                    size_bytes=16,
                    sha256="0" * 64,
                    temp_storage_key=key,
                )
            )
            if root is not None:
                path = Path(root) / key
                if number == 1:
                    path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    UploadFile.objects.bulk_create(files, batch_size=5000)
    UploadSession.objects.bulk_create(sessions, batch_size=5000)
    UploadPart.objects.bulk_create(part_rows, batch_size=5000)
    return sessions


def cleanup_process(*args, **env) -> subprocess.Popen:
    """``manage.py run_cleanup`` in a new process, on the test database, with ``env`` set."""
    environ = {
        **os.environ,
        "DJANGO_CONFIGURATION": "Test",
        "DATABASE_URL": database_url(),
        **{name: str(value) for name, value in env.items()},
    }
    return subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "run_cleanup", "--json", *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def overlapping_cleanup_runs(storage_root, *, count=4) -> list[dict]:
    """``count`` filesystem cleanup processes released together; each one's JSON report,
    once all succeeded.

    Every run's first write is its first step's claim on the session table. A table
    lock held here until all ``count`` runs wait behind it makes them start their work
    at the same moment: otherwise the first process up can finish it all before the
    others have imported Django, and the test would prove nothing about overlap.
    """
    table = connection.ops.quote_name(UploadSession._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        processes = [
            cleanup_process(PORTAL_STORAGE_ROOT=storage_root, PORTAL_STORAGE_BACKEND="filesystem")
            for _ in range(count)
        ]
        try:
            _wait_for_waiters(cursor, table, count, processes)
        except BaseException:
            # Not left to run on the test database once the lock is released.
            for process in processes:
                process.kill()
            raise
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        reports.append(json.loads(out))
    return reports


def _wait_for_waiters(cursor, table: str, count: int, processes, seconds=120) -> None:
    """Until ``count`` sessions wait for a lock on ``table``; fails if a process exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
            [table],
        )
        if cursor.fetchone()[0] >= count:
            return
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a cleanup run exited early: {process.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} cleanup runs reached {table} in {seconds} s")
