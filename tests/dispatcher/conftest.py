import pytest

from tests.dispatcher.receiver import WebhookReceiver


@pytest.fixture
def receiver():
    """A real webhook receiver on 127.0.0.1 (see ``WebhookReceiver`` for its paths)."""
    with WebhookReceiver() as server:
        yield server
