"""Blocking calls on a native thread (``portal.threads``), with and without gevent."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from portal import threads
from portal.services.hashing import BackgroundDigest


def test_a_call_runs_on_another_thread_and_returns_its_result():
    wait = threads.start(lambda value: (value * 2, threading.get_native_id()), 21)

    result, native_id = wait()

    assert result == 42
    assert native_id != threading.get_native_id()


def test_what_the_call_raises_is_raised_by_the_wait():
    def fail():
        raise OSError("disk gone")

    wait = threads.start(fail)

    with pytest.raises(OSError, match="disk gone"):
        wait()


GEVENT_PROBE = """
from gevent import monkey
monkey.patch_all()
import threading
from portal import threads
get_native_id = monkey.get_original("threading", "get_native_id")
def fail():
    raise ValueError("raised on the native thread")
assert threads.start(get_native_id)() != get_native_id()
try:
    threads.start(fail)()
except ValueError as exc:
    print("ok:", exc)
"""


def test_under_gevent_the_call_runs_on_a_real_thread_of_the_hubs_pool():
    # The production server's workers patch threading, so a plain thread would be a
    # greenlet on the request's own core.
    pytest.importorskip("gevent")
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok: raised on the native thread"


def test_a_background_digest_equals_hashing_in_order():
    pieces = [os.urandom(size) for size in (0, 1, 2047, 2048, 1024 * 1024 + 3, 5)]
    digest = BackgroundDigest(hashlib.sha256())

    for piece in pieces:
        digest.update(piece)

    assert digest.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_a_forked_child_runs_calls_on_threads_of_its_own():
    threads.start(int)()  # the parent's executor now has an idle thread
    child = os.fork()
    if child == 0:  # the child: exit 0 only if its call completes
        try:
            os._exit(0 if threads.start(lambda: 7)() == 7 else 1)
        finally:
            os._exit(2)
    for _ in range(100):
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        pytest.fail("the forked child's call never ran")

    assert os.waitstatus_to_exitcode(status) == 0
