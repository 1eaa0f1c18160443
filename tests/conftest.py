import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time

import boto3
import pytest
from django.test import override_settings

from portal.storage import get_storage
from tests.environment import REDIS_URL, redis_available, require, uses_postgres

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_S3_REGION_NAME": "us-east-1",
}
_bucket_counter = iter(range(10**9))
_bucket_lock = threading.Lock()


def pytest_collection_modifyitems(config, items):
    # A test marked postgres is always a database test.
    for item in items:
        if item.get_closest_marker("postgres") and not item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.django_db)


@pytest.fixture(autouse=True)
def _require_marked_services(request):
    if request.node.get_closest_marker("postgres"):
        require(uses_postgres(), "needs PostgreSQL: set DATABASE_URL=postgres://...")
    if request.node.get_closest_marker("redis"):
        require(redis_available(), f"needs Redis at {REDIS_URL}")


@pytest.fixture(autouse=True)
def _fresh_storage_adapter():
    get_storage.cache_clear()
    yield
    get_storage.cache_clear()


@pytest.fixture
def storage_root(tmp_path):
    root = tmp_path / "storage"
    root.mkdir()
    return root


@pytest.fixture
def fs_storage(storage_root):
    """The filesystem adapter on a fresh root, installed as the portal's storage."""
    with override_settings(
        PORTAL_STORAGE_BACKEND="filesystem", PORTAL_STORAGE_ROOT=str(storage_root)
    ):
        yield get_storage()


@pytest.fixture(scope="session")
def s3_endpoint():
    """URL of moto's standalone S3 server: CI's (PORTAL_TEST_S3_ENDPOINT) or one started here.

    moto stands in for AWS itself, which cannot be reached from this machine; the
    adapter talks to it over real HTTP with boto3. It runs in its own process, as
    in CI, so the objects it holds never count in a test's memory measurements.
    """
    endpoint = os.environ.get("PORTAL_TEST_S3_ENDPOINT")
    if endpoint:
        yield endpoint
        return
    require(importlib.util.find_spec("moto.server") is not None, "needs moto[server]")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _accepts_connections("127.0.0.1", port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("moto's S3 server did not start", pytrace=False)
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _accepts_connections(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A new, empty bucket on the S3 endpoint."""
    with _bucket_lock:
        name = f"portal-test-{os.getpid()}-{next(_bucket_counter)}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=S3_CREDENTIALS["AWS_S3_REGION_NAME"],
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_settings(s3_endpoint, s3_bucket):
    return {
        "PORTAL_STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": s3_bucket,
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        **S3_CREDENTIALS,
    }


@pytest.fixture
def s3_storage(s3_settings):
    """The S3 adapter on a fresh bucket of moto's server, installed as the portal's storage."""
    with override_settings(**s3_settings):
        yield get_storage()


@pytest.fixture(params=["filesystem", "s3"])
def storage(request):
    """Each storage adapter in turn, installed as the portal's storage."""
    return request.getfixturevalue("fs_storage" if request.param == "filesystem" else "s3_storage")


# -- a storage root that refuses writes, even to root -------------------------------


@pytest.fixture
def read_only_root(tmp_path):
    root = tmp_path / "read-only"
    root.mkdir()
    if os.geteuid() != 0:
        root.chmod(0o555)
        yield root
        root.chmod(0o755)
        return
    # Permission bits do not stop root: mount a read-only filesystem there instead.
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(root)]
    mounted = subprocess.run(mount, capture_output=True).returncode == 0
    require(mounted, "needs to mount a read-only tmpfs (root ignores permission bits)")
    yield root
    subprocess.run(["umount", str(root)], check=True)
