"""The README's Upload API walk-through, run as written against a live server on 127.0.0.1.

Every ``bash`` block of the section runs, in order, in one shell (the blocks share
``$TOKEN`` and ``$SESSION``) from a fresh directory holding only links to the clone's
``.venv`` and ``manage.py``; each ``# → NNN`` comment is a status the block before it
must print.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.servers import free_port, runserver

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

pytestmark = pytest.mark.slow


def section(title):
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def shell_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def documented_statuses(blocks):
    return [int(code) for block in blocks for code in re.findall(r"^# → (\d{3})\b", block, re.M)]


@pytest.fixture
def clone_dir(tmp_path):
    """A working directory like the clone's, with a server of its own on a free port."""
    work = tmp_path / "work"
    work.mkdir()
    for name in (".venv", "manage.py"):
        (work / name).symlink_to(ROOT / name)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORTAL_"))},
        "DJANGO_CONFIGURATION": "Dev",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "PORTAL_STORAGE_ROOT": str(tmp_path / "storage"),
        "PORT": str(port),
    }
    python = work / ".venv" / "bin" / "python"
    subprocess.run(
        [python, "manage.py", "migrate", "--noinput"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    with runserver(python, cwd=work, env=env, log_path=tmp_path / "server.log", port=port):
        yield work, env


def test_every_upload_api_block_runs_as_written_with_its_documented_statuses(clone_dir):
    work, env = clone_dir
    blocks = shell_blocks(section("Upload API"))
    expected = documented_statuses(blocks)
    assert len(blocks) >= 5 and len(expected) >= 10

    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", "\n".join(blocks)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    printed = [int(line) for line in result.stdout.splitlines() if re.fullmatch(r"\d{3}", line)]
    assert printed == expected, result.stdout
    assert {201, 200, 409, 204, 410, 401, 404} <= set(printed)
    assert '"missing_parts": "2"' in result.stdout


def test_the_admin_has_no_view_site_link_to_a_missing_page(admin_client):
    index = admin_client.get("/admin/")

    assert index.status_code == 200
    assert "View site" not in index.content.decode()
    assert admin_client.get("/", follow=True).redirect_chain[-1][0] == "/admin/"
