"""Blocking calls on a native thread, so the calling core can go on meanwhile.

``hashlib`` and file writes release the GIL, so a request can hash or write one
buffer on another core while it receives the next (PEP 0024). Under gevent (the
production server) ``threading`` makes greenlets, which share one core; real
threads come from the hub's pool there.
"""

import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache


def start(function: Callable, *args) -> Callable[[], object]:
    """Run ``function(*args)`` on a native thread; return what waits for its result
    (and raises what it raised)."""
    hub_pool = _gevent_thread_pool()
    if hub_pool is not None:
        return hub_pool.spawn(function, *args).get
    return _executor().submit(function, *args).result


class OneInFlight:
    """Calls started one after another, at most one running: starting the next waits
    for the one before, so their order holds and so does the memory they hold."""

    def __init__(self):
        self._pending = None  # waits for the running call

    def start(self, function: Callable, *args) -> None:
        self.wait()
        self._pending = start(function, *args)

    def wait(self) -> None:
        """Wait for the running call, if any; raise what it raised."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending()


def _gevent_thread_pool():
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return None
    import gevent

    return gevent.get_hub().threadpool


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="portal-native")


# A forked child (a Celery pool process) inherits the executor but not its threads,
# and would queue work for threads it believes idle: it makes its own.
os.register_at_fork(after_in_child=_executor.cache_clear)
