"""tus throughput and server memory: the portal's /uploads/tus/ against @tus/server, side by side.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench \
        .venv/bin/python bench/tus.py                        # 1 GiB + 200 x 1 MiB
    .venv/bin/python bench/tus.py --big-mib 256 --small-count 50   # a quick run

One run, one client: tus-js-client in Node (tests/tus/js, ``npm ci`` there first)
uploads one large file (``--big-mib``, default 1024) and then ``--small-count``
files of ``--small-mib`` (default 200 x 1 MiB, four at a time) to

- the portal: gunicorn with the production configuration (``boot/gunicorn.conf.py``
  when present, else gthread workers as in bench/upload.py), JSON logs at INFO, the
  filesystem adapter in a temporary directory, PostgreSQL when DATABASE_URL is set
  (a scratch database ``<name>_bench_tus``) else SQLite; every upload ends stored,
  with its SHA-256 and its ``file.stored`` event;
- the peer: ``@tus/server`` with ``@tus/file-store`` (``tests/tus/js/peer.mjs``) on
  the same machine and disk.

``--floor`` adds a third server, ``bench/tus_floor.py``: the portal's stack (the
same gunicorn config, middleware, token check, storage adapter and logging) with
none of its upload bookkeeping, the floor of the portal's CPU per file.

Each workload runs ``--rounds`` times (default 2), the servers' order alternating,
so neither always goes second. Prints one line per figure: each workload's
throughput on each server over all rounds, the ratio portal/peer (goal >= 1.0x)
and each round's; each workload's CPU per file (from /proc: the portal's master
and workers, PostgreSQL's processes during the portal's rounds, the peer's
process) and the portal's total as a multiple of the peer's, a figure that
does not swing with how the client's connections fall on the two workers; and
the portal's resident memory (master and workers summed from /proc, sampled
during the run): idle, peak, growth (goal < 64 MiB).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.support import free_port, scratch_database, scratch_directory  # noqa: E402
from bench.upload import (  # noqa: E402
    RssSampler,
    cpu_seconds,
    make_token,
    manage,
    process_tree,
    processes_named,
    rss_bytes,
    server_env,
    wait_until_up,
)

MiB = 1024 * 1024
JS = PROJECT / "tests" / "tus" / "js"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=1024, help="large file (default 1024)")
    parser.add_argument("--small-count", type=int, default=200, help="small files (default 200)")
    parser.add_argument("--small-mib", type=int, default=1, help="small file size (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, help="small files at a time")
    parser.add_argument("--parallel-uploads", type=int, default=1, help="tus-js-client option")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of each workload, the servers' order alternating (default 2)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time bench/tus_floor.py: a tus server on the portal's stack that only "
        "checks the token and writes the body (the floor of the portal's CPU per file)",
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        help="directory for the sources and both servers' files (default: var/), "
        "e.g. an XFS mount, where the portal joins parts by shared extents",
    )
    return parser.parse_args()


def write_file(path: Path, size: int) -> Path:
    block = os.urandom(MiB)
    with open(path, "wb") as out:
        for offset in range(0, size, MiB):
            out.write(block[: min(MiB, size - offset)])
    return path


def client(endpoint: str, token: str, files: list[Path], *, concurrency: int, parallel: int):
    result = subprocess.run(
        ["node", "bench.mjs", endpoint, token, str(concurrency), str(parallel), *map(str, files)],
        cwd=JS,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


GUNICORN_CONF = PROJECT / "boot" / "gunicorn.conf.py"


def portal_command(port: int) -> list[str]:
    if GUNICORN_CONF.exists():
        return [
            sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF),
            "--bind", f"127.0.0.1:{port}",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "gunicorn", "boot.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
        "--workers", "2", "--threads", "4", "--timeout", "600",
    ]  # fmt: skip


def cpu_snapshot(serving: list[int]) -> dict[int, float]:
    """CPU seconds so far of the server's processes ``serving`` and of PostgreSQL's."""
    return cpu_seconds([*serving, *processes_named("postgres")])


def cpu_used(before: dict[int, float], serving: list[int]) -> dict[str, float]:
    """CPU seconds since ``before`` (a ``cpu_snapshot``) of ``serving`` and of
    PostgreSQL (a backend started since counts from zero)."""
    after = cpu_snapshot(serving)
    used = {pid: seconds - before.get(pid, 0.0) for pid, seconds in after.items()}
    server = sum(used.get(pid, 0.0) for pid in serving)
    return {"server": server, "postgres": sum(used.values()) - server}


def main():
    args = parse_args()
    if not (JS / "node_modules" / "tus-js-client").exists():
        raise SystemExit(f"run 'npm ci' in {JS} first")
    workdir = scratch_directory("portal-bench-tus-", args.scratch)
    env = server_env(workdir)
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        env["DATABASE_URL"] = scratch_database(database_url, suffix="bench_tus", create=True)
    sources = workdir / "sources"
    sources.mkdir()
    big = [write_file(sources / "big.bin", args.big_mib * MiB)]
    small = [
        write_file(sources / f"small-{n:04d}.bin", args.small_mib * MiB)
        for n in range(args.small_count)
    ]
    portal = peer = floor = None
    figures = {}
    try:
        manage(env, "migrate", "--verbosity", "0")
        token = make_token(env)
        port = free_port()
        log_file = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed with the server
        portal = subprocess.Popen(
            portal_command(port), cwd=PROJECT, env=env, stdout=log_file, stderr=log_file
        )
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, portal)
        (workdir / "peer").mkdir()
        peer = subprocess.Popen(
            ["node", "peer.mjs", str(workdir / "peer")], cwd=JS, stdout=subprocess.PIPE, text=True
        )
        peer_url = f"http://127.0.0.1:{json.loads(peer.stdout.readline())['port']}/files/"
        servers = [("portal", f"{base}/uploads/tus/", token), ("peer", peer_url, "")]
        if args.floor:
            floor_port = free_port()
            floor = subprocess.Popen(
                portal_command(floor_port),
                cwd=PROJECT,
                env={
                    **env,
                    "DJANGO_SETTINGS_MODULE": "bench.tus_floor_settings",
                    "DJANGO_CONFIGURATION": "Floor",
                },
                stdout=log_file,
                stderr=log_file,
            )
            wait_until_up(f"http://127.0.0.1:{floor_port}", floor)
            servers.append(("floor", f"http://127.0.0.1:{floor_port}/floor/", token))
        warm = small[: args.concurrency * 2]
        for _, endpoint, auth in servers:
            client(endpoint, auth, warm, concurrency=args.concurrency, parallel=1)
        pids = process_tree(portal.pid)
        # Each server's processes, for its CPU: read once all its workers have served.
        serving = {"portal": pids, "peer": [peer.pid]}
        if floor is not None:
            serving["floor"] = process_tree(floor.pid)
        idle = rss_bytes(pids)
        sampler = RssSampler(pids)
        sampler.start()
        for name, files, concurrency in (("big", big, 1), ("small", small, args.concurrency)):
            for round_number in range(args.rounds):
                # Whichever server goes second meets the state the first left (free
                # memory, the disk's queue), so the order alternates between rounds.
                for server, endpoint, auth in servers[:: 1 if round_number % 2 == 0 else -1]:
                    # No dirty pages of the run before: their writeback would slow it.
                    os.sync()
                    before = cpu_snapshot(serving[server])
                    run = client(
                        endpoint,
                        auth,
                        files,
                        concurrency=concurrency,
                        parallel=args.parallel_uploads,
                    )
                    run["cpu"] = cpu_used(before, serving[server])
                    figures.setdefault((name, server), []).append(run)
        peak = sampler.stop()
        stored = manage(
            env,
            "shell",
            "-c",
            "from portal.models import OutboxEvent; "
            "print(OutboxEvent.objects.filter(event_type='file.stored').count())",
        )
    finally:
        for process in (portal, peer, floor):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
        if database_url:
            scratch_database(database_url, suffix="bench_tus", create=False)

    print(
        f"setup: tus-js-client (parallelUploads {args.parallel_uploads}), "
        f"{'postgresql' if database_url else 'sqlite'}, filesystem storage under {workdir.parent}, "
        f"{'boot/gunicorn.conf.py (gevent)' if GUNICORN_CONF.exists() else 'gunicorn gthread 2x4'}"
    )
    labels = {
        "big": f"1 x {args.big_mib} MiB",
        "small": f"{args.small_count} x {args.small_mib} MiB",
    }
    names = [server for server, _, _ in servers]
    for name in ("big", "small"):
        rates = {}
        for server in names:
            runs = figures[name, server]
            seconds = sum(run["seconds"] for run in runs)
            rates[server] = sum(run["bytes"] for run in runs) / 1e6 / seconds
            print(
                f"{name}_{server}: {rates[server]:.0f} MB/s "
                f"({seconds / len(runs):.2f} s a round, {labels[name]}, {len(runs)} rounds)"
            )
        print(f"{name}_ratio_portal_vs_peer: {rates['portal'] / rates['peer']:.2f}x")
        if "floor" in rates:
            print(f"{name}_ratio_floor_vs_peer: {rates['floor'] / rates['peer']:.2f}x")
        by_round = [
            (portal["bytes"] / portal["seconds"]) / (peer["bytes"] / peer["seconds"])
            for portal, peer in zip(figures[name, "portal"], figures[name, "peer"], strict=True)
        ]
        print(f"{name}_ratio_by_round: {' '.join(f'{ratio:.2f}x' for ratio in by_round)}")
        files = args.rounds * len(big if name == "big" else small)
        cpu = {
            server: [
                sum(run["cpu"][part] for run in figures[name, server]) / files * 1e3
                for part in ("server", "postgres")
            ]
            for server in names
        }
        # /proc counts in clock ticks (10 ms): a short run of the peer may show none.
        ratio = (
            f"{sum(cpu['portal']) / cpu['peer'][0]:.1f}x the peer's"
            if cpu["peer"][0]
            else "the peer's under one clock tick"
        )
        floor_cpu = (
            f"; floor {cpu['floor'][0]:.1f} + {cpu['floor'][1]:.1f} ms" if "floor" in cpu else ""
        )
        print(
            f"{name}_cpu_per_file: portal {cpu['portal'][0]:.1f} ms + PostgreSQL "
            f"{cpu['portal'][1]:.1f} ms, peer {cpu['peer'][0]:.1f} ms = {ratio}{floor_cpu}"
        )
    expected = len(warm) + args.rounds * (1 + len(small))
    print(f"file_stored_events: {stored.splitlines()[-1]} (expected {expected})")
    print(f"server_rss_idle: {idle / MiB:.1f} MiB")
    print(f"server_rss_peak: {peak / MiB:.1f} MiB")
    print(f"server_rss_growth: {(peak - idle) / MiB:.1f} MiB")


if __name__ == "__main__":
    main()
