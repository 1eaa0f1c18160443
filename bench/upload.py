"""Upload throughput and server memory: a large file in parts through gunicorn on loopback.

    .venv/bin/python bench/upload.py                      # 1 GiB in 8 MiB parts, 4 clients
    .venv/bin/python bench/upload.py --size-mib 128       # a quick run
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python bench/upload.py

Starts gunicorn (gthread workers: the sync worker would need one process per
concurrent upload; threads share one copy of Django per worker and the body
copy releases the GIL) on 127.0.0.1 with the production logging configuration
(LOG_FORMAT=json, LOG_LEVEL=INFO) and the filesystem adapter in a temporary
directory. Four client threads, each with its own ``requests.Session``, send
the parts from one reusable buffer; then the session is finalized.

Prints one line per figure: the upload throughput, the finalize time, the raw
write speed of the same bytes to the same directory (the baseline: the ratio
is the portal's overhead), and the server's resident memory (master + workers,
summed from /proc and sampled during the run): idle, peak and growth.
Goal: >= 200 MB/s and RSS growth < 64 MiB.

The database is PostgreSQL when DATABASE_URL is set (it is migrated), else a
fresh SQLite file with IMMEDIATE transactions (concurrent writers queue on the
lock instead of failing on an upgrade).
"""

import argparse
import hashlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.support import free_port, scratch_directory  # noqa: E402

MiB = 1024 * 1024


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--chunk-mib", type=int, default=8, help="part size (default 8)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    return parser.parse_args()


def server_env(workdir: Path) -> dict:
    database_url = os.environ.get("DATABASE_URL") or (
        f"sqlite:///{workdir / 'bench.sqlite3'}?transaction_mode=IMMEDIATE&timeout=30"
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "boot.settings",
        "DJANGO_CONFIGURATION": "Production",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "PORTAL_STORAGE_BACKEND": "filesystem",
        "PORTAL_STORAGE_ROOT": str(workdir / "storage"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def make_token(env: dict) -> str:
    username = f"bench-{os.getpid()}-{int(time.time())}"
    manage(
        env,
        "shell",
        "-c",
        f"from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user({username!r})",
    )
    return manage(env, "create_api_token", username, "--name", "bench")


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User and system CPU each of the processes ``pids`` has used so far, from /proc."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def processes_named(name: str) -> list[int]:
    """The pids of the processes whose command is ``name`` (e.g. PostgreSQL's backends)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == name:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


class RssSampler(threading.Thread):
    """Samples the summed RSS of the server's processes until stopped; keeps the peak."""

    def __init__(self, pids: list[int], interval: float = 0.05):
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_bytes(self.pids))
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def wait_until_up(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            if requests.get(f"{base}/health", timeout=5).ok:
                return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /health within 60 s")


def upload(base: str, token: str, *, size: int, chunk: int, clients: int, buffer: bytes):
    """Create a session, PUT every part from ``clients`` threads; returns (session_id, seconds)."""
    headers = {"Authorization": f"Bearer {token}"}
    created = requests.post(
        f"{base}/uploads/sessions",
        json={
            "original_filename": "bench.bin",
            "total_size_bytes": size,
            "chunk_size_bytes": chunk,
        },
        headers=headers,
        timeout=30,
    )
    created.raise_for_status()
    session = created.json()
    numbers: queue.Queue[int] = queue.Queue()
    for number in range(1, session["total_parts"] + 1):
        numbers.put(number)
    errors: list[str] = []
    view = memoryview(buffer)

    def client():
        with requests.Session() as http:
            http.headers.update(headers)
            while True:
                try:
                    number = numbers.get_nowait()
                except queue.Empty:
                    return
                length = min(chunk, size - (number - 1) * chunk)
                response = http.put(
                    f"{base}/uploads/sessions/{session['session_id']}/parts/{number}",
                    data=view[:length],
                    headers={"Content-Type": "application/octet-stream"},
                    timeout=120,
                )
                if response.status_code != 201:
                    errors.append(f"part {number}: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit("upload failed:\n" + "\n".join(errors[:10]))
    return session["session_id"], elapsed


def baseline_write(directory: Path, *, size: int, chunk: int, buffer: bytes) -> tuple[float, float]:
    """Seconds to write the same bytes as part files: plain, and with SHA-256 as the adapter does."""
    directory.mkdir()
    view = memoryview(buffer)
    timings = []
    for hashed in (False, True):
        started = time.perf_counter()
        for index, offset in enumerate(range(0, size, chunk)):
            length = min(chunk, size - offset)
            digest = hashlib.sha256()
            with open(directory / f"{hashed}-{index}.part", "xb") as out:
                for piece in range(0, length, MiB):
                    block = view[piece : min(piece + MiB, length)]
                    if hashed:
                        digest.update(block)
                    out.write(block)
        timings.append(time.perf_counter() - started)
    shutil.rmtree(directory)
    return timings[0], timings[1]


def main():
    args = parse_args()
    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB
    buffer = os.urandom(chunk)
    workdir = scratch_directory("portal-bench-")
    env = server_env(workdir)
    server = None
    try:
        manage(env, "migrate", "--verbosity", "0")
        token = make_token(env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_file = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed with the server
        server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "boot.wsgi:application",
                "--bind", f"127.0.0.1:{port}",
                "--worker-class", "gthread",
                "--workers", str(args.workers),
                "--threads", str(args.threads),
                "--timeout", "300",
            ],
            cwd=PROJECT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until_up(base, server)
        # Warm every worker thread's imports and connections before measuring idle memory.
        upload(base, token, size=8 * chunk, chunk=chunk, clients=args.clients, buffer=buffer)
        pids = process_tree(server.pid)
        idle = rss_bytes(pids)

        sampler = RssSampler(pids)
        sampler.start()
        session_id, upload_seconds = upload(
            base, token, size=size, chunk=chunk, clients=args.clients, buffer=buffer
        )
        started = time.perf_counter()
        finalized = requests.post(
            f"{base}/uploads/sessions/{session_id}/finalize",
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        )
        finalize_seconds = time.perf_counter() - started
        peak = sampler.stop()
        finalized.raise_for_status()
        assert finalized.json()["file"]["size_bytes"] == size

        raw_seconds, hashed_seconds = baseline_write(
            workdir / "baseline", size=size, chunk=chunk, buffer=buffer
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    mb = size / 1e6
    database = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"
    print(
        f"setup: {args.size_mib} MiB in {args.chunk_mib} MiB parts, {args.clients} clients, "
        f"gunicorn gthread {args.workers}x{args.threads}, {database}, filesystem storage"
    )
    print(f"upload_throughput: {mb / upload_seconds:.0f} MB/s ({upload_seconds:.2f} s)")
    print(f"finalize: {finalize_seconds:.2f} s ({mb / finalize_seconds:.0f} MB/s assemble+hash)")
    print(f"baseline_raw_write: {mb / raw_seconds:.0f} MB/s")
    print(f"baseline_write_with_sha256: {mb / hashed_seconds:.0f} MB/s")
    print(f"upload_vs_raw_write: {raw_seconds / upload_seconds:.2f}x")
    print(f"server_rss_idle: {idle / MiB:.1f} MiB")
    print(f"server_rss_peak: {peak / MiB:.1f} MiB")
    print(f"server_rss_growth: {(peak - idle) / MiB:.1f} MiB")


if __name__ == "__main__":
    main()
