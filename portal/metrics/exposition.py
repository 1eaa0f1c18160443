"""What ``GET /metrics`` and a Celery worker's metrics port answer."""

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from portal import conf
from portal.metrics.gauges import DatabaseGauges


def counters_registry() -> CollectorRegistry:
    """The counters of every process of this server (multiprocess mode), else of this one."""
    registry = CollectorRegistry()
    directory = conf.metrics_multiprocess_dir()
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(REGISTRY)  # a registry collects like any collector
    return registry


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of the counters and the database gauges."""
    registry = counters_registry()
    registry.register(DatabaseGauges())
    return generate_latest(registry), CONTENT_TYPE_LATEST
