import logging

import pytest


@pytest.fixture
def log_events(caplog):
    """The structlog event dicts logged at INFO and above during the test."""
    caplog.set_level(logging.INFO)

    def events(name=None):
        found = [record.msg for record in caplog.records if isinstance(record.msg, dict)]
        return [event for event in found if name is None or event["event"] == name]

    return events
