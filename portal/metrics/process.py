"""Process hooks of prometheus-client's multiprocess mode, for gunicorn and Celery.

The library's rules: ``PROMETHEUS_MULTIPROC_DIR`` is set before the library is
imported, in every process of a server; the directory is emptied when the server
starts (its files are named by process id, and a stale file would be added to the
new server's totals); and a process that exits is marked dead. Each server (one
gunicorn master, one Celery worker) gets its own directory: two servers sharing one
would empty each other's files at start.

Gunicorn: ``boot/gunicorn.conf.py`` calls ``ensure_directory`` when it is read,
``wipe_directory`` from ``on_starting``, ``process_exited`` from ``child_exit`` and
``remove_private_directory`` from ``on_exit``.
Celery: ``portal.apps`` connects the three ``on_worker_*`` receivers below.
Nothing here is imported at module level beyond the standard library, so the
gunicorn master can import this module before the environment is set.
"""

import os
import shutil
import tempfile

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The directory ensure_directory() created in this process, if it made one.
_private_directory = None


def ensure_directory() -> str:
    """Return the multiprocess directory, creating a private one when none is configured.

    Call it in the server's first process, before any worker starts: the workers
    inherit the environment variable.
    """
    global _private_directory
    path = os.environ.get(ENVIRONMENT_VARIABLE)
    if not path:
        path = _private_directory = tempfile.mkdtemp(prefix="portal-metrics-")
        os.environ[ENVIRONMENT_VARIABLE] = path
    os.makedirs(path, exist_ok=True)
    return path


def remove_private_directory() -> None:
    """At server exit: remove the directory ``ensure_directory`` created, if it did."""
    if _private_directory:
        shutil.rmtree(_private_directory, ignore_errors=True)


def wipe_directory() -> int:
    """Remove the previous run's metric files (``*.db``, nothing else); return how many."""
    path = os.environ.get(ENVIRONMENT_VARIABLE)
    if not path or not os.path.isdir(path):
        return 0
    removed = 0
    for entry in os.scandir(path):
        if entry.is_file() and entry.name.endswith(".db"):
            os.remove(entry.path)
            removed += 1
    return removed


def process_exited(pid: int) -> None:
    """A worker process of this server exited: let the library drop its live gauges."""
    if os.environ.get(ENVIRONMENT_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


# -- Celery (receivers connected in PortalConfig.ready) -------------------------------


def on_worker_init(**kwargs) -> None:
    """The worker's main process, before its pool starts: empty the directory."""
    import structlog

    log = structlog.get_logger(__name__)
    if os.environ.get(ENVIRONMENT_VARIABLE):
        log.info("metrics.directory_wiped", files=wipe_directory())
    else:
        log.warning(
            "metrics.not_multiprocess",
            hint=f"set {ENVIRONMENT_VARIABLE} so the pool processes' counters add up",
        )


def on_worker_process_shutdown(pid=None, **kwargs) -> None:
    process_exited(pid or os.getpid())


def on_worker_ready(**kwargs) -> None:
    """Serve the pool's counters on ``PORTAL_METRICS_WORKER_PORT`` (0: not at all)."""
    import structlog
    from prometheus_client import start_http_server

    from portal import conf
    from portal.metrics.exposition import counters_registry

    port = conf.metrics_worker_port()
    if not (conf.metrics_enabled() and port and conf.metrics_multiprocess_dir()):
        return
    start_http_server(port, registry=counters_registry())
    structlog.get_logger(__name__).info("metrics.worker_serving", port=port)
