import logging

import pytest

from tests.logs import event_of


@pytest.fixture
def log_events(caplog):
    """The event dicts (event name and fields) logged at INFO and above during the test."""
    caplog.set_level(logging.INFO)

    def events(name=None):
        found = [event_of(record) for record in caplog.records]
        return [event for event in found if name is None or event["event"] == name]

    return events
