"""The multiprocess directory's life: made, emptied at start (only of metric files), dropped."""

import os
import subprocess
import sys

import pytest
from django.core import checks
from django.test import override_settings

from portal.metrics import process

ENV = process.ENVIRONMENT_VARIABLE


@pytest.fixture
def unset(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(process, "_private_directory", None)
    yield
    # ensure_directory() sets the variable itself: no later subprocess may inherit it.
    os.environ.pop(ENV, None)


def test_a_server_without_a_directory_gets_a_private_one_removed_at_exit(unset):
    path = process.ensure_directory()

    assert os.environ[ENV] == path and os.path.isdir(path)
    process.remove_private_directory()
    assert not os.path.exists(path)


def test_a_configured_directory_is_created_and_never_removed(unset, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "metrics"))

    assert process.ensure_directory() == str(tmp_path / "metrics")
    process.remove_private_directory()
    assert (tmp_path / "metrics").is_dir()


def test_wipe_removes_the_last_run_files_and_keeps_foreign_ones(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path))
    for name in ("counter_101.db", "histogram_101.db", "gauge_livesum_7.db"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "README").write_text("an operator's note")
    (tmp_path / "nested.db").mkdir()

    assert process.wipe_directory() == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README", "nested.db"]


def test_an_exited_worker_is_marked_dead(tmp_path):
    # A process of its own: multiprocess mode is chosen when the library is imported.
    script = (
        "from portal.metrics import process; "
        "open(process.os.path.join(process.os.environ['PROMETHEUS_MULTIPROC_DIR'], "
        "'gauge_livesum_4242.db'), 'wb').close(); "
        "process.process_exited(4242)"
    )
    subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, ENV: str(tmp_path)}, check=True
    )

    assert list(tmp_path.iterdir()) == []


def ids(messages):
    return [message.id for message in messages]


@override_settings(PORTAL_METRICS_WORKER_PORT=70000)
def test_a_port_out_of_range_is_an_error_naming_the_setting():
    errors = checks.run_checks()

    [error] = [e for e in errors if e.id == "portal.E040"]
    assert "PORTAL_METRICS_WORKER_PORT" in error.msg


def test_metrics_without_a_multiprocess_directory_warn_at_deploy(unset):
    assert "portal.W020" in ids(checks.run_checks(include_deployment_checks=True))
    with override_settings(PORTAL_METRICS_ENABLED=False):
        assert "portal.W020" not in ids(checks.run_checks(include_deployment_checks=True))
