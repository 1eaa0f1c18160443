"""docker-compose.yml describes the production-shaped stack (no Docker engine here)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_stack_has_every_service(compose):
    assert {"postgres", "redis", "minio", "minio-bucket", "web", "worker", "beat"} <= set(
        compose["services"]
    )


def test_exactly_one_beat(compose):
    beat = compose["services"]["beat"]
    assert beat["deploy"]["replicas"] == 1
    assert "beat" in beat["command"]
    assert "--beat" not in compose["services"]["worker"]["command"]


def test_web_healthcheck_uses_the_readiness_probe(compose):
    assert "/ready" in " ".join(compose["services"]["web"]["healthcheck"]["test"])


def test_portal_services_point_at_the_stack(compose):
    env = compose["services"]["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["CELERY_BROKER_URL"].startswith("redis://")
    assert env["PORTAL_STORAGE_BACKEND"] == "s3"
    assert env["AWS_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["AWS_STORAGE_BUCKET_NAME"] == "portal"


@pytest.mark.skipif(
    not shutil.which("docker-compose") and os.environ.get("CI") != "true",
    reason="docker-compose is not installed (.ci/run installs it)",
)
def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
