"""The production web server: ``gunicorn -c boot/gunicorn.conf.py`` (``--bind`` overrides).

Only what this config needs for metrics is here so far; the server sizing and
slow-client settings land with the production server config (SPEC §14).
prometheus-client's multiprocess mode needs ``PROMETHEUS_MULTIPROC_DIR`` set
before any worker imports it (a private temporary directory when unset), emptied
at server start, and each exited worker marked dead.
"""

import os

from portal.metrics import process

wsgi_app = "boot.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))

process.ensure_directory()


def on_starting(server):
    process.wipe_directory()


def child_exit(server, worker):
    process.process_exited(worker.pid)


def on_exit(server):
    process.remove_private_directory()
