import io
import json
import logging
import logging.config

import pytest
import structlog
from django.http import HttpResponse
from django.test import RequestFactory

from boot.logging import configure_structlog, logging_config
from portal.middleware import RequestIdMiddleware


@pytest.fixture
def json_log_stream():
    """Install the production (JSON) logging configuration, writing to a buffer."""
    stream = io.StringIO()
    config = logging_config(level="INFO", fmt="json")
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    configure_structlog()
    yield stream
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_and_stdlib_records_share_one_json_format(json_log_stream):
    structlog.get_logger("portal.test").info("session.created", session_id="abc")
    logging.getLogger("celery.worker").warning("worker %s ready", "w1")

    portal_line, celery_line = lines(json_log_stream)

    assert portal_line["event"] == "session.created"
    assert portal_line["session_id"] == "abc"
    assert portal_line["level"] == "info"
    assert portal_line["logger"] == "portal.test"
    assert celery_line["event"] == "worker w1 ready"
    assert celery_line["level"] == "warning"
    assert {"timestamp"} <= portal_line.keys() & celery_line.keys()


def test_request_id_is_bound_to_log_lines_and_echoed(json_log_stream):
    def view(request):
        structlog.get_logger("portal.test").info("part.received", part_number=3)
        return HttpResponse("ok")

    middleware = RequestIdMiddleware(view)
    response = middleware(RequestFactory().get("/x", HTTP_X_REQUEST_ID="req-123"))

    assert response["X-Request-ID"] == "req-123"
    (line,) = lines(json_log_stream)
    assert line["request_id"] == "req-123"
    assert line["part_number"] == 3


def test_malformed_request_id_is_replaced_and_context_cleared(json_log_stream):
    middleware = RequestIdMiddleware(lambda request: HttpResponse("ok"))

    response = middleware(RequestFactory().get("/x", HTTP_X_REQUEST_ID="bad id\nwith newline"))

    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32
    assert structlog.contextvars.get_contextvars() == {}


def test_console_format_is_readable_text():
    stream = io.StringIO()
    config = logging_config(level="INFO", fmt="console")
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        structlog.get_logger("portal.test").info("file.stored", file_id="f1")
    finally:
        from django.conf import settings

        logging.config.dictConfig(settings.LOGGING)
    output = stream.getvalue()
    assert "file.stored" in output and "file_id=f1" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output)
