import io
import json
import logging
import logging.config

import pytest
import structlog
from django.http import HttpResponse
from django.test import RequestFactory

from boot.logging import configure_structlog, logging_config
from portal.logs import get_logger
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


def test_portal_records_render_as_boot_json_with_their_fields_and_bound_ids(json_log_stream):
    with structlog.contextvars.bound_contextvars(run_id="run-1"):
        get_logger("portal.services.cleanup").info("cleanup.started", trigger="beat")
    get_logger("portal.services.cleanup").debug("cleanup.hidden")  # below INFO

    (line,) = lines(json_log_stream)

    assert line["event"] == "cleanup.started"
    assert (line["trigger"], line["run_id"]) == ("beat", "run-1")
    assert (line["level"], line["logger"]) == ("info", "portal.services.cleanup")


def test_portal_exception_records_carry_the_traceback(json_log_stream):
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("portal.test").exception("cleanup.step_failed", step="sweep")

    (line,) = lines(json_log_stream)

    assert (line["event"], line["step"], line["level"]) == ("cleanup.step_failed", "sweep", "error")
    assert "ValueError: boom" in line["exception"]


def test_portal_records_are_plain_stdlib_records_with_fields(caplog):
    caplog.set_level(logging.INFO, logger="portal")
    with structlog.contextvars.bound_contextvars(request_id="req-9"):
        get_logger("portal.test").info("part.received", part_number=2, thread="t-1")

    (record,) = caplog.records
    assert (record.name, record.getMessage(), record.levelno) == (
        "portal.test",
        "part.received",
        20,
    )
    assert (record.part_number, record.request_id) == (2, "req-9")
    assert record.thread_ == "t-1"  # a LogRecord attribute's name gets an underscore
    assert record.funcName == "test_portal_records_are_plain_stdlib_records_with_fields"
