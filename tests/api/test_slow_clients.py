"""Slow and stalled clients against the production server config (SPEC §14, PEP 0021).

gunicorn runs ``boot/gunicorn.conf.py`` in a subprocess, as the Dockerfile starts
it, with a 2-second ``PORTAL_PART_IDLE_TIMEOUT_SECONDS`` so a stall ends quickly.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from portal.models import UploadPart, UploadSession
from portal.services.tokens import create_api_token
from tests.api.conftest import temp_objects
from tests.api.production import (
    ProductionServer,
    manage,
    production_env,
    read_answer,
    stalled_part,
)
from tests.factories import make_user

CHUNK = 1024
IDLE_TIMEOUT = 2
# Far more than the production config's threads: two gevent workers, one thread each.
STALLED = 64


def database_url() -> str:
    """The URL of the database this test runs on, for the server subprocess."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def limits(storage_root, **env) -> dict:
    return {
        "storage_root": storage_root,
        "PORTAL_PART_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
        "PORTAL_CHUNK_SIZE_MIN": str(CHUNK),
        "PORTAL_CHUNK_SIZE": str(CHUNK),
        **env,
    }


@pytest.fixture
def server(tmp_path, fs_storage, storage_root):
    env = production_env(database_url=database_url(), **limits(storage_root))
    running = ProductionServer(env=env, log_path=tmp_path / "gunicorn.log")
    yield running
    running.stop()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_stalled_parts_never_starve_probes_and_end_after_the_idle_timeout(server, fs_storage):
    token = create_api_token(user=make_user("stalled")).plaintext
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status, session = server.request(
        "POST",
        "/uploads/sessions",
        body={"original_filename": "a.bin", "total_size_bytes": STALLED * CHUNK},
        headers=headers,
    )
    assert status == 201
    parts = f"/uploads/sessions/{session['session_id']}/parts"

    # Headers and ten bytes of every part, then nothing.
    stalled = [
        stalled_part(server.port, f"{parts}/{n}", token, length=CHUNK, sent=b"x" * 10)
        for n in range(1, STALLED + 1)
    ]

    # Once the server has taken them all in (each request's start costs a database
    # connection: a burst of them takes a moment on a shared CI machine) ...
    assert server.request("GET", "/health", timeout=30)[0] == 200
    # ... and while they hang, probes and a new session answer within a second.
    assert server.request("GET", "/health", timeout=1)[0] == 200
    assert server.request("GET", "/ready", timeout=1)[0] == 200
    created, _ = server.request(
        "POST",
        "/uploads/sessions",
        body={"original_filename": "b.bin", "total_size_bytes": 10},
        headers=headers,
        timeout=1,
    )
    assert created == 201

    answers = [read_answer(conn, timeout=IDLE_TIMEOUT + 20) for conn in stalled]
    assert {(status, body["error"]["code"]) for status, body in answers} == {(408, "body_timeout")}
    assert not UploadPart.objects.exists()
    assert UploadSession.objects.get(pk=session["session_id"]).completed_parts == 0
    assert temp_objects(fs_storage) == []
    abandoned = [line for line in server.log().splitlines() if '"event": "part.abandoned"' in line]
    assert len(abandoned) == STALLED
    assert json.loads(abandoned[0])["session_id"] == session["session_id"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_slow_part_that_keeps_sending_is_not_abandoned(server, fs_storage):
    token = create_api_token(user=make_user("slow")).plaintext
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    _, session = server.request(
        "POST",
        "/uploads/sessions",
        body={"original_filename": "a.bin", "total_size_bytes": CHUNK},
        headers=headers,
    )
    conn = stalled_part(
        server.port,
        f"/uploads/sessions/{session['session_id']}/parts/1",
        token,
        length=CHUNK,
        sent=b"",
    )
    # Four pauses of half the idle timeout each: longer in total than the timeout.
    for piece in range(4):
        conn.sendall(b"y" * (CHUNK // 4))
        if piece < 3:
            conn.settimeout(IDLE_TIMEOUT / 2)
            with pytest.raises(TimeoutError):
                conn.recv(1)  # nothing comes back meanwhile: the server is still reading

    assert read_answer(conn, timeout=10)[0] == 201
    assert UploadPart.objects.get().size_bytes == CHUNK


def test_parallel_parts_on_a_sqlite_url_without_options_all_count(tmp_path):
    """Any SQLite URL gets immediate transactions and a busy timeout: writers queue."""
    storage_root = tmp_path / "storage"
    storage_root.mkdir()
    env = production_env(
        database_url=f"sqlite:///{tmp_path / 'portal.sqlite3'}", **limits(storage_root)
    )
    manage("migrate", "--verbosity=0", env=env)
    token = manage(
        "shell",
        "-c",
        "from portal.services.tokens import create_api_token; from tests.factories import make_user;"
        "print(create_api_token(user=make_user('sqlite')).plaintext)",
        env=env,
    ).split()[-1]
    server = ProductionServer(env=env, log_path=tmp_path / "gunicorn.log")
    try:
        headers = {"Authorization": f"Bearer {token}"}
        _, session = server.request(
            "POST",
            "/uploads/sessions",
            body={"original_filename": "a.bin", "total_size_bytes": 8 * CHUNK},
            headers={**headers, "Content-Type": "application/json"},
        )
        parts = f"/uploads/sessions/{session['session_id']}/parts"
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(
                    lambda n: server.request(
                        "PUT", f"{parts}/{n}", body=bytes([n]) * CHUNK, headers=headers
                    )[0],
                    range(1, 9),
                )
            )
        _, status = server.request(
            "GET", f"/uploads/sessions/{session['session_id']}", headers=headers
        )
    finally:
        server.stop()

    assert statuses == [201] * 8, server.log()[-3000:]
    assert (status["completed_parts"], status["received_parts"]) == (8, "1-8")
