import pytest
from prometheus_client import REGISTRY

from tests.dispatcher.conftest import receiver  # noqa: F401 - a real webhook receiver


class Samples:
    """Counter values of this process (tests run without multiprocess mode), read as deltas."""

    def __init__(self):
        self.before = self.read()

    @staticmethod
    def read() -> dict:
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in REGISTRY.collect()
            if family.name.startswith("portal_")
            for sample in family.samples
            if not sample.name.endswith("_created")
        }

    def delta(self, name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.read().get(key, 0.0) - self.before.get(key, 0.0)


@pytest.fixture
def samples(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return Samples()
