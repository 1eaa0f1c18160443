"""The wheel in a plain ``django-admin startproject`` host, set up only as the README says.

One module-scoped host: the wheel is built from this tree, installed with its
dependencies into a fresh virtualenv, and a new project gets exactly the README's
"Install into your project" lines. Then, in that host: ``check``, ``migrate``, the
schedule in django-celery-beat, the commands' stdout, a full upload over HTTP and the
cleanup admin page, on a real server on 127.0.0.1.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest
import redis
import requests

from tests.environment import REDIS_URL
from tests.servers import runserver

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HOST_ONLY = ("configurations", "dj_database_url", "gunicorn", "psycopg")

pytestmark = pytest.mark.slow


def readme_block(marker):
    """The README's python block of "Install into your project" starting with ``# marker``."""
    text = README.read_text()
    start = text.index("\n## Install into your project\n")
    install = text[start : text.index("\n## ", start + 1)]
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", install, re.S) if b.startswith(marker)
    ]
    return block


class Host:
    def __init__(self, path):
        self.path = path
        self.python = path / "venv" / "bin" / "python"
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DJANGO_", "PORTAL_", "CELERY_", "PYTHON"))
                and k not in ("DATABASE_URL", "VIRTUAL_ENV")
            },
            "DJANGO_SUPERUSER_PASSWORD": "operator-pw",
        }

    def run(self, *args, check=True, cwd=None):
        result = subprocess.run(
            [str(self.python), *args],
            cwd=cwd or self.path / "site",
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def manage(self, *args, check=True):
        return self.run("manage.py", *args, check=check)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (path,) = dist.glob("ingest_portal-*.whl")
    (dist / "build.log").write_text(build.stdout + build.stderr)
    return path


@pytest.fixture(scope="module")
def host(wheel, tmp_path_factory):
    host = Host(tmp_path_factory.mktemp("host"))
    venv.create(host.path / "venv", with_pip=True)
    host.run("-m", "pip", "install", "-q", str(wheel), cwd=host.path)
    (host.path / "site").mkdir()
    host.run(str(host.path / "venv" / "bin" / "django-admin"), "startproject", "hostproj", ".")
    site = host.path / "site" / "hostproj"
    with open(site / "settings.py", "a") as settings:
        settings.write("\n" + readme_block("# settings.py"))
    with open(site / "urls.py", "a") as urls:
        urls.write("\n" + readme_block("# urls.py"))
    return host


def test_the_wheel_holds_the_app_alone(wheel):
    names = zipfile.ZipFile(wheel).namelist()

    assert {name.split("/")[0] for name in names} == {
        "portal",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    assert "portal/templates/admin/portal/cleanuprun/change_list.html" in names
    assert "portal/migrations/0001_initial.py" in names
    assert "portal/management/commands/run_cleanup.py" in names
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    )
    required = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    plain = [line for line in required if "extra ==" not in line]
    assert not [
        line for line in plain if re.search("configurations|gunicorn|psycopg|dj-database", line)
    ]
    assert "License-Expression: MIT" in metadata
    # setuptools warns of deprecated metadata (project.license as a table) while building.
    assert "deprecat" not in (wheel.parent / "build.log").read_text().lower()


def test_host_only_packages_stay_out_of_the_host(host):
    found = host.run(
        "-c", f"import importlib.util as u; print([m for m in {HOST_ONLY!r} if u.find_spec(m)])"
    )

    assert found.stdout.strip() == "[]"


def test_check_passes_and_warns_that_the_host_has_no_celery_app(host):
    result = host.manage("check")

    assert "portal.W010" in result.stderr + result.stdout
    assert "ERROR" not in result.stderr


def test_migrate_installs_the_cleanup_schedule_in_django_celery_beat(host):
    host.manage("migrate", "--noinput")

    rows = host.manage(
        "shell",
        "-c",
        "import json; from django_celery_beat.models import PeriodicTask as T; "
        "print(json.dumps({t.name: [t.task, t.interval.every, t.interval.period, t.enabled] "
        "for t in T.objects.select_related('interval')}))",
    )

    assert (
        json.loads(rows.stdout.strip().splitlines()[-1]).items()
        >= {
            "portal-cleanup": ["portal.tasks.portal_cleanup_task", 600, "seconds", True],
            "portal-dispatch-outbox": ["portal.tasks.dispatch_outbox_task", 30, "seconds", True],
        }.items()
    )


@pytest.fixture(scope="module")
def token(host):
    host.manage("migrate", "--noinput")
    host.manage("createsuperuser", "--noinput", "--username", "alice", "--email", "a@example.com")
    issued = host.manage("create_api_token", "alice")
    return issued.stdout


def test_create_api_token_prints_the_token_alone(token):
    assert re.fullmatch(r"[A-Za-z0-9_\-]{20,}\n", token), repr(token)


def test_run_cleanup_json_prints_json_alone(host, token):
    report = json.loads(host.manage("run_cleanup", "--json").stdout)

    assert report["status"] == "success"


@pytest.fixture(scope="module")
def server(host, token):
    with runserver(
        host.python, cwd=host.path / "site", env=host.env, log_path=host.path / "server.log"
    ) as url:
        yield url


def test_a_full_upload_over_http(host, token, server):
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token.strip()}"
    data = os.urandom(5 * 1024**2 + 1000)  # two parts at the smallest chunk size
    created = api.post(
        f"{server}/uploads/sessions",
        json={
            "original_filename": "data.bin",
            "content_type": "application/octet-stream",
            "total_size_bytes": len(data),
            "chunk_size_bytes": 5 * 1024**2,
        },
    )
    assert created.status_code == 201, created.text
    session = created.json()["session_id"]
    for number, start in ((2, 5 * 1024**2), (1, 0)):
        part = api.put(
            f"{server}/uploads/sessions/{session}/parts/{number}",
            data=data[start : start + 5 * 1024**2],
        )
        assert part.status_code == 201, part.text

    finalized = api.post(
        f"{server}/uploads/sessions/{session}/finalize",
        json={"sha256": hashlib.sha256(data).hexdigest()},
    )

    assert finalized.status_code == 200, finalized.text
    stored = finalized.json()["file"]
    assert stored["size_bytes"] == len(data)
    assert (host.path / "site" / "var" / "storage" / stored["storage"]["key"]).read_bytes() == data


def test_the_cleanup_admin_page_has_its_buttons(server):
    browser = requests.Session()
    login = browser.get(f"{server}/admin/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    browser.post(
        f"{server}/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": csrf, "username": "alice", "password": "operator-pw"},
        headers={"Referer": f"{server}/admin/login/"},
    )

    page = browser.get(f"{server}/admin/portal/cleanuprun/")

    assert page.status_code == 200
    assert "Run cleanup now" in page.text and "Dry run" in page.text


CELERY_APP = """import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostproj.settings")
app = Celery("hostproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.broker_url = os.environ["HOST_BROKER_URL"]
app.autodiscover_tasks()
"""


WORKER_OPTIONS = ["--pool", "solo", "--loglevel", "INFO", "--without-heartbeat", "--without-gossip"]


@pytest.mark.redis
def test_a_host_celery_worker_logs_portal_info_lines_as_info(host, token, tmp_path):
    # Last in this module: the host gets the Celery app of Celery's Django guide.
    site = host.path / "site" / "hostproj"
    (site / "celery.py").write_text(CELERY_APP)
    (site / "__init__.py").write_text("from .celery import app as celery_app\n")
    redis.Redis.from_url(REDIS_URL).flushdb()
    host.env["HOST_BROKER_URL"] = REDIS_URL
    assert "portal.W010" not in host.manage("check").stderr

    host.manage("shell", "-c", "from portal.tasks import portal_cleanup_task as t; t.delay()")
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [str(host.python.parent / "celery"), "-A", "hostproj", "worker", *WORKER_OPTIONS],
            cwd=host.path / "site",
            env=host.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while "cleanup.finished" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    lines = [line for line in log_path.read_text().splitlines() if "cleanup." in line]
    assert lines and all("INFO/" in line and "WARNING" not in line for line in lines), lines
