"""The portal's one production web server config (SPEC §14, PEP 0021).

    gunicorn -c boot/gunicorn.conf.py                        # serves 0.0.0.0:8000
    gunicorn -c boot/gunicorn.conf.py --bind 127.0.0.1:9000  # any other address

The Dockerfile, docker-compose.yml and the Kubernetes manifests start exactly
this. ``GUNICORN_CMD_ARGS`` overrides any value for one deployment.

gevent, not threads: an upload spends its time waiting for the client's next
bytes, and a waiting greenlet costs a few kilobytes where a waiting thread is a
slot taken from a fixed pool. With gthread, as many stalled or slow part uploads
as there are threads starve ``/health`` and ``/ready``; here one worker carries
``worker_connections`` uploads at once and the probes still answer (measured
in PEP 0021 with ``bench/slow_clients.py``). A body that sends nothing for
``PORTAL_PART_IDLE_TIMEOUT_SECONDS`` is abandoned (``portal.views.bodies``).

Metrics (SPEC §12, PEP 0023): prometheus-client's multiprocess mode needs
``PROMETHEUS_MULTIPROC_DIR`` set before any worker imports it (a private
temporary directory when unset), emptied at server start, and each exited
worker marked dead.

Readiness: each worker starts its readiness checks as it starts, so its first
``/ready`` does not pay the checks' one-time setup inside the probe's budget.
"""

from portal.metrics import process

wsgi_app = "boot.wsgi:application"
bind = ["0.0.0.0:8000"]

worker_class = "gevent"
workers = 2  # one per core; each serves many connections
worker_connections = 1000  # concurrent requests (greenlets) per worker

# The arbiter restarts a worker whose event loop has not run for this long, not a
# request that is merely slow. Finalizing a large file on filesystem storage copies
# and hashes it without yielding (S3 copies server-side): leave it ample time.
timeout = 120
graceful_timeout = 30
keepalive = 5

# Logs are the app's own JSON lines (boot/logging.py); no access log.
accesslog = None
# One server per pod: gunicorn's control socket is not needed, and its default
# path would be shared by every gunicorn on the host.
control_socket_disable = True

process.ensure_directory()


def on_starting(server):
    process.wipe_directory()


def post_worker_init(worker):
    # Django is set up by now (the app is loaded), so the portal can be imported.
    from portal.services.health import start_readiness_checks

    start_readiness_checks()


def child_exit(server, worker):
    process.process_exited(worker.pid)


def on_exit(server):
    process.remove_private_directory()
