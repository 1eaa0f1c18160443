"""Cleanup driven by real Celery processes: beat's database schedule, and a full cycle."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.test import Client, override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from portal.models import CleanupRun, UploadPart, UploadSession
from portal.services.tokens import create_api_token
from tests.cleanup.helpers import database_url, temp_keys
from tests.environment import REDIS_URL
from tests.factories import make_user

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CELERY = Path(sys.executable).parent / "celery"  # the virtualenv running the tests
BROKER_URL = REDIS_URL
SMALL_CHUNKS = {
    "PORTAL_CHUNK_SIZE": 8,
    "PORTAL_CHUNK_SIZE_MIN": 4,
    "PORTAL_CHUNK_SIZE_MAX": 64,
}


def celery(*args, log_path, **env):
    """A Celery process of the boot app on the test database, logging to ``log_path``."""
    environ = {
        **os.environ,
        "DJANGO_CONFIGURATION": "Test",
        "DATABASE_URL": database_url(),
        **{name: str(value) for name, value in env.items()},
    }
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [str(CELERY), "-A", "boot", *args], env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    process.log = log
    return process


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.log.close()


def wait_for(condition, *, timeout, what, log_path):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; log:\n{Path(log_path).read_text()[-4000:]}")
        time.sleep(0.5)


def cleanup_interval_in_db():
    task = PeriodicTask.objects.filter(name="portal-cleanup").select_related("interval").first()
    return task.interval.schedule.run_every if task and task.interval else None


def test_beat_copies_the_interval_setting_to_the_database_and_follows_a_change(tmp_path):
    log_path = tmp_path / "beat.log"
    for minutes in (7, 3):
        beat = celery(
            "beat",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--pidfile=",
            log_path=log_path,
            PORTAL_CLEANUP_INTERVAL_MINUTES=minutes,
        )
        try:
            wait_for(
                lambda m=minutes: cleanup_interval_in_db() == timedelta(minutes=m),
                timeout=60,
                what=f"a {minutes}-minute schedule in the database",
                log_path=log_path,
            )
        finally:
            stop(beat)
    task = PeriodicTask.objects.get(name="portal-cleanup")
    assert (task.task, task.enabled) == ("portal.tasks.portal_cleanup_task", True)


@pytest.mark.redis
@pytest.mark.slow
def test_uploads_left_behind_are_cleaned_by_beat_through_a_real_worker(
    tmp_path, fs_storage, storage_root
):
    redis.Redis.from_url(BROKER_URL).flushdb()  # no task left over from an earlier run
    token = create_api_token(user=make_user()).plaintext
    with override_settings(**SMALL_CHUNKS):
        abandoned = upload(token, parts=[b"a" * 8])  # one part of two, then silence
        finished = upload(token, parts=[b"b" * 8, b"c" * 8], finalize=True)
        aborted = upload(token, parts=[b"d" * 8], abort=True)
    assert len(temp_keys(fs_storage)) == 4  # finalize and abort leave the parts to cleanup
    # Time moves on: the abandoned session is idle past its TTL, the others long finished.
    now = timezone.now()
    UploadSession.objects.filter(pk=abandoned).update(last_activity_at=now - timedelta(days=2))
    UploadSession.objects.filter(pk__in=[finished, aborted]).update(
        finished_at=now - timedelta(hours=1)
    )
    log_path = tmp_path / "worker.log"

    worker = celery(
        "worker",
        "--beat",
        "--scheduler",
        "django_celery_beat.schedulers:DatabaseScheduler",
        "--concurrency",
        "1",
        "--pidfile=",
        "--schedule",
        str(tmp_path / "beat-schedule"),
        log_path=log_path,
        CELERY_BROKER_URL=BROKER_URL,
        PORTAL_CLEANUP_INTERVAL_MINUTES=0.05,  # every 3 seconds
        # Expired sessions' parts go on the next run instead of 30 minutes later.
        PORTAL_CLEANUP_GRACE_MINUTES=0,
        PORTAL_STORAGE_ROOT=storage_root,
        PORTAL_STORAGE_BACKEND="filesystem",
    )
    try:
        wait_for(
            lambda: not UploadPart.objects.exists() and not temp_keys(fs_storage),
            timeout=120,
            what="beat-driven cleanup to empty temp storage",
            log_path=log_path,
        )
    finally:
        stop(worker)

    session = UploadSession.objects.get(pk=abandoned)
    assert (session.status, session.failure_reason) == ("failed", "expired")
    assert UploadSession.objects.get(pk=finished).status == "complete"
    runs = CleanupRun.objects.filter(trigger="beat", status="success")
    assert runs.exists()
    assert sum(run.counts["total"]["expired"] for run in runs) == 1
    assert sum(run.counts["orphan_temp_parts"]["deleted"] for run in runs) == 4
    assert (storage_root / "files").is_dir()  # final objects are never touched


def upload(token, *, parts, finalize=False, abort=False):
    """Upload ``parts`` of a file through the API; return the session id."""
    client = Client(headers={"Authorization": f"Bearer {token}"})
    created = client.post(
        "/uploads/sessions",
        {
            "original_filename": "data.bin",
            "content_type": "application/octet-stream",
            "total_size_bytes": 16,
            "chunk_size_bytes": 8,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    session_id = created.json()["session_id"]
    for number, body in enumerate(parts, start=1):
        response = client.put(
            f"/uploads/sessions/{session_id}/parts/{number}",
            body,
            content_type="application/octet-stream",
        )
        assert response.status_code == 201, response.content
    if finalize:
        finalized = client.post(
            f"/uploads/sessions/{session_id}/finalize", {}, content_type="application/json"
        )
        assert finalized.status_code == 200, finalized.content
    if abort:
        assert client.delete(f"/uploads/sessions/{session_id}").status_code == 204
    return session_id
