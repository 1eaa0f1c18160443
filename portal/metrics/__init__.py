"""Prometheus metrics (SPEC §12): counters, scrape-time gauges, exposition, process hooks.

This package module imports nothing: ``boot/gunicorn.conf.py`` imports
``portal.metrics.process`` in the gunicorn master, before prometheus-client may be
imported (the library picks multiprocess mode from the environment at import).
"""
