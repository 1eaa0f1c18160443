"""Real failing dependencies for the probe tests.

A PostgreSQL cluster of the test's own (initdb, pg_ctl) that can be stopped and
frozen, the portal served by gunicorn in a subprocess as in production, an S3
server that can be stopped, and a TCP server that accepts and never answers.
"""

import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.environment import require

PROJECT_ROOT = Path(__file__).resolve().parents[2]
READY_BUDGET_SECONDS = 0.8
# What a /ready answer may take: the budget, plus slack for a loaded 2-core machine's
# scheduling. Far below the hangs the tests make (a storage or database that never
# answers holds a check for seconds), so an answer in time still proves the budget.
READY_ANSWER_LIMIT_SECONDS = READY_BUDGET_SECONDS + 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces and parentheses: fields start after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry))
    return children


# -- a PostgreSQL cluster of the test's own ------------------------------------------


def postgres_bin_dir() -> Path | None:
    configured = os.environ.get("PORTAL_TEST_PG_BIN")
    candidates = [Path(configured)] if configured else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def _signal_child(pid: int, signum: int) -> None:
    # A backend may exit between the listing of the children and the signal (a
    # connection closing after a restart): it needs no signal then.
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory, on a free loopback port.

    PostgreSQL refuses to run as root, so under root its commands run as the
    ``postgres`` user, which owns the directory.
    """

    def __init__(self, bin_dir: Path, base_dir: Path):
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.port = free_port()

    def url(self, *, password: str) -> str:
        return f"postgres://postgres:{password}@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self._run("initdb", "-D", self.data_dir, "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        server_options = (
            f"-p {self.port} -k {self.base_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        )
        log_file = self.base_dir / "postgres.log"
        self._run(
            "pg_ctl", "-D", self.data_dir, "-l", log_file, "-o", server_options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def freeze(self) -> None:
        """SIGSTOP the postmaster and its backends: connections stay open, nothing answers."""
        postmaster = self._postmaster_pid()
        os.kill(postmaster, signal.SIGSTOP)  # first, so it forks no new backend meanwhile
        for pid in child_pids(postmaster):
            _signal_child(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        postmaster = self._postmaster_pid()
        for pid in child_pids(postmaster):
            _signal_child(pid, signal.SIGCONT)
        os.kill(postmaster, signal.SIGCONT)

    def _postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def _run(self, program: str, *args) -> None:
        command = [str(self.bin_dir / program), *map(str, args)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def postgres_cluster():
    bin_dir = postgres_bin_dir()
    require(bin_dir is not None, "needs PostgreSQL's initdb and pg_ctl (set PORTAL_TEST_PG_BIN)")
    # Not under pytest's tmp_path: its parent is private to root, and the
    # postgres user must reach the data directory.
    base_dir = Path(tempfile.mkdtemp(prefix="portal-pg-"))
    if os.geteuid() == 0:
        require(_user_exists("postgres"), "needs a postgres user to run PostgreSQL as root")
        shutil.chown(base_dir, user="postgres", group="postgres")
    cluster = ThrowawayCluster(bin_dir, base_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running:
            cluster.thaw()
            cluster.stop(mode="immediate")
        shutil.rmtree(base_dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# -- the portal under gunicorn -----------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict
    body: bytes
    seconds: float


class PortalServer:
    """The portal served by gunicorn (one sync worker) on a loopback socket bound here."""

    def __init__(self, *, env: dict, log_path: Path):
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = listener.getsockname()[1]
        self.log_path = log_path
        with listener, open(log_path, "wb") as log:
            # gunicorn takes over the bound socket: no race for the port.
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "boot.wsgi:application",
                    f"--bind=fd://{listener.fileno()}",
                    "--workers=1",
                    "--worker-class=sync",
                    "--graceful-timeout=2",
                    "--no-control-socket",  # its default path is shared by every gunicorn
                ],
                cwd=PROJECT_ROOT,
                env={**os.environ, **env},
                pass_fds=(listener.fileno(),),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_serving()

    def request(self, path: str, *, method: str = "GET", host: str | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Host": host} if host else {}
        started = time.monotonic()
        try:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        return Answer(
            response.status, dict(response.getheaders()), body, time.monotonic() - started
        )

    def worker_pids(self) -> list[int]:
        return child_pids(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited:\n{self.log_path.read_text()}", pytrace=False)
            try:
                if self.request("/health").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"gunicorn did not serve /health:\n{self.log_path.read_text()}", pytrace=False)


# -- S3 endpoints that fail --------------------------------------------------------


class SilentServer:
    """Accepts TCP connections and never answers: a dependency that hangs."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.accepted.append(connection)

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def stoppable_s3_endpoint():
    """A moto S3 server of this test's own, which the test may stop."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield server, f"http://{host}:{port}"
    server.stop()
