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
