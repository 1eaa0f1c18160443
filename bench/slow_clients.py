"""Probes and a fast upload while many slow uploads hold connections (SPEC §14, PEP 0021).

Command (a PostgreSQL database of your own: it is migrated; without DATABASE_URL a
temporary SQLite file is used):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench \\
        .venv/bin/python bench/slow_clients.py --slow 200 --fast-mib 256

Starts the production server config exactly as deployed (``gunicorn -c
boot/gunicorn.conf.py`` plus ``--bind`` on a loopback socket), Production
settings with JSON logs at INFO and filesystem storage in a temporary directory.
``GUNICORN_CMD_ARGS`` compares another server shape in the same way, e.g.
``GUNICORN_CMD_ARGS="--worker-class gthread --threads 32"``.

Phase 1 (unloaded): one fast upload of ``--fast-mib`` MiB in 8 MiB parts, sent
back to back on one connection, while /health and /ready are probed.
Phase 2 (loaded): ``--slow`` part uploads each send 1 KB per second, then the
same fast upload and probes run again. One line per figure: /health and /ready
p99 in both phases, the fast upload's MB/s loaded vs unloaded (ratio), and the
growth of the server's RSS (master and workers) from the end of phase 1 to the
peak of phase 2. Goals: /health p99 < 50 ms, /ready p99 < 100 ms, fast upload
>= 50% of unloaded, RSS growth < 256 MiB.
"""

import argparse
import http.client
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from tests.api.production import ProductionServer, manage, production_env  # noqa: E402

MiB = 1024**2
CHUNK = 8 * MiB
PROBE_INTERVAL = 0.05
SLOW_RATE = 1024  # bytes per second per slow upload


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Probes(threading.Thread):
    """Probes ``path`` every PROBE_INTERVAL on a new connection, as kubelet does."""

    def __init__(self, port: int, path: str):
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.latencies: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.path)
                status = conn.getresponse().status
                conn.close()
                if status != 200:
                    self.failures += 1
            except OSError:
                self.failures += 1
            self.latencies.append(time.monotonic() - started)
            self.stopping.wait(PROBE_INTERVAL)


class SlowUploads(threading.Thread):
    """``count`` part uploads, each sending SLOW_RATE bytes a second, all from one thread."""

    def __init__(self, port: int, token: str, session_id: str, count: int):
        super().__init__(daemon=True)
        self.sockets = []
        for number in range(1, count + 1):
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(
                f"PUT /uploads/sessions/{session_id}/parts/{number} HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {CHUNK}\r\n\r\n".encode()
            )
            self.sockets.append(conn)
        self.stopping = threading.Event()
        self.broken = 0

    def run(self):
        piece = b"s" * SLOW_RATE
        while not self.stopping.wait(1.0):
            for conn in list(self.sockets):
                try:
                    conn.sendall(piece)
                except OSError:
                    self.broken += 1
                    self.sockets.remove(conn)

    def stop(self):
        self.stopping.set()
        self.join()
        for conn in self.sockets:
            conn.close()


def create_session(server, headers, total: int) -> str:
    status, body = server.request(
        "POST",
        "/uploads/sessions",
        body={"original_filename": "bench.bin", "total_size_bytes": total},
        headers={**headers, "Content-Type": "application/json"},
    )
    assert status == 201, body
    return body["session_id"]


def fast_upload(server, headers, mib: int) -> float:
    """MB/s of one upload's parts, sent back to back on one keep-alive connection."""
    session_id = create_session(server, headers, mib * MiB)
    data = os.urandom(CHUNK)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    started = time.monotonic()
    for number in range(1, mib * MiB // CHUNK + 1):
        conn.request("PUT", f"/uploads/sessions/{session_id}/parts/{number}", data, headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 201, response.status
    elapsed = time.monotonic() - started
    conn.close()
    return mib * MiB / 1e6 / elapsed


def phase(server, headers, mib: int) -> tuple[float, Probes, Probes]:
    probes = [Probes(server.port, "/health"), Probes(server.port, "/ready")]
    for probe in probes:
        probe.start()
    time.sleep(1)
    try:
        rate = fast_upload(server, headers, mib)
    except (OSError, AssertionError) as exc:  # a starved server: report it, do not crash
        print(f"fast upload failed: {exc!r}")
        rate = 0.0
    time.sleep(1)
    for probe in probes:
        probe.stopping.set()
        probe.join()
    return rate, *probes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=200, help="concurrent slow uploads")
    parser.add_argument("--fast-mib", type=int, default=256, help="size of the fast upload")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="portal-slow-") as tmp:
        root = Path(tmp)
        (root / "storage").mkdir()
        database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{root / 'bench.sqlite3'}"
        env = production_env(database_url=database_url, storage_root=root / "storage")
        manage("migrate", "--verbosity=0", env=env)
        token = manage(
            "shell",
            "-c",
            "import uuid; from django.contrib.auth import get_user_model; "
            "from portal.services.tokens import create_api_token; "
            "print(create_api_token(user=get_user_model().objects.create_user("
            "'bench-' + uuid.uuid4().hex[:8])).plaintext)",
            env=env,
        ).split()[-1]
        headers = {"Authorization": f"Bearer {token}"}
        server = ProductionServer(env=env, log_path=root / "gunicorn.log")
        try:
            unloaded, health0, ready0 = phase(server, headers, args.fast_mib)
            rss_before = rss(server.process.pid)

            slow = SlowUploads(
                server.port, token, create_session(server, headers, args.slow * CHUNK), args.slow
            )
            slow.start()
            peak = [rss_before]
            sampling = threading.Event()

            def sample():
                while not sampling.wait(0.25):
                    peak[0] = max(peak[0], rss(server.process.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            time.sleep(3)  # every slow upload is in its body by now
            loaded, health1, ready1 = phase(server, headers, args.fast_mib)
            sampling.set()
            sampler.join()
            slow.stop()
        finally:
            server.stop()

    shape = os.environ.get("GUNICORN_CMD_ARGS", "boot/gunicorn.conf.py as is")
    print(f"server: {shape}; {args.slow} slow uploads at {SLOW_RATE} B/s; fast {args.fast_mib} MiB")
    print(f"/health p99 unloaded: {p99(health0.latencies):.1f} ms")
    print(
        f"/health p99 loaded: {p99(health1.latencies):.1f} ms (goal < 50 ms; {health1.failures} failed)"
    )
    print(f"/ready p99 unloaded: {p99(ready0.latencies):.1f} ms")
    print(
        f"/ready p99 loaded: {p99(ready1.latencies):.1f} ms (goal < 100 ms; {ready1.failures} failed)"
    )
    print(f"fast upload unloaded: {unloaded:.1f} MB/s")
    print(
        f"fast upload loaded: {loaded:.1f} MB/s = {loaded / unloaded:.0%} of unloaded (goal >= 50%)"
    )
    print(f"server RSS growth: {(peak[0] - rss_before) / MiB:.1f} MiB (goal < 256 MiB)")
    print(f"slow uploads dropped by the server: {slow.broken}")


if __name__ == "__main__":
    main()
