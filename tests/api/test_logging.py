import logging
import os

import pytest

from tests.api.conftest import chunks_of
from tests.logs import event_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_limits")]


def test_lifecycle_events_carry_ids_and_never_the_token(uploader, fs_storage, caplog):
    data = os.urandom(12)
    with caplog.at_level(logging.DEBUG, logger="portal"):
        session = uploader.create(original_filename="a.bin", total_size_bytes=len(data)).json()
        for number, part in chunks_of(data, 8).items():
            uploader.put_part(session["session_id"], number, part)
        uploader.finalize(session["session_id"])
        other = uploader.create(original_filename="b.bin", total_size_bytes=3).json()
        uploader.abort(other["session_id"])

    logs = [event_of(record) for record in caplog.records]
    by_event = {}
    for entry in logs:
        by_event.setdefault(entry["event"], []).append(entry)
    ids = {"session_id": session["session_id"], "file_id": session["file_id"]}
    assert by_event["session.created"][0].items() >= ids.items()
    assert [e["part_number"] for e in by_event["part.received"]] == [1, 2]
    assert all(e.items() >= ids.items() for e in by_event["part.received"])
    assert by_event["file.stored"][0].items() >= ids.items()
    assert by_event["session.aborted"][0]["session_id"] == other["session_id"]
    assert uploader.token not in repr(logs)
    assert uploader.token[4:12] not in repr(logs)
