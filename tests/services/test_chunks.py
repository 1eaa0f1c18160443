import io
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.exceptions import SessionGone, TooLarge, UploadRejected
from portal.models import UploadPart, UploadSession
from portal.schemas import SessionRequest
from portal.services.chunks import expected_part_size, receive_part
from portal.services.sessions import create_session
from tests.api.conftest import temp_objects
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(settings):
    settings.PORTAL_CHUNK_SIZE_MIN = 4
    user = make_user()
    status = create_session(
        user=user,
        request=SessionRequest(original_filename="a.bin", total_size_bytes=10, chunk_size_bytes=4),
    )
    return UploadSession.objects.get(pk=status.session_id)


def receive(session, number, body: bytes, **kwargs):
    kwargs.setdefault("content_length", len(body))
    return receive_part(
        user=session.created_by,
        session_id=session.pk,
        part_number=number,
        stream=io.BytesIO(body),
        **kwargs,
    )


def test_every_part_but_the_last_is_one_chunk(session):
    assert [expected_part_size(session, n) for n in (1, 2, 3)] == [4, 4, 2]


def test_a_body_shorter_than_its_content_length_is_refused_and_removed(session, fs_storage):
    with pytest.raises(UploadRejected) as refused:
        receive(session, 1, b"abc", content_length=4)

    assert refused.value.code == "wrong_part_size"
    assert temp_objects(fs_storage) == []
    assert not UploadPart.objects.exists()


def test_a_body_longer_than_its_content_length_keeps_nothing(session, fs_storage):
    # A stream that ignores Content-Length: the adapter stops at the part size.
    with pytest.raises(TooLarge):
        receive(session, 3, b"abcdef", content_length=2)

    assert temp_objects(fs_storage) == []


def test_counters_follow_the_part_rows(session, fs_storage):
    receive(session, 3, b"yz")
    receive(session, 1, b"abcd")
    duplicate = receive(session, 1, b"abcd")

    session.refresh_from_db()
    assert duplicate.created is False
    assert (session.status, session.completed_parts, session.bytes_received) == (
        "in_progress",
        2,
        6,
    )
    assert len(temp_objects(fs_storage)) == 2


class ExpiringStorage:
    """Storage that lets cleanup expire the session while the part is being written."""

    def __init__(self, storage, session):
        self.storage, self.session = storage, session

    def __getattr__(self, name):
        return getattr(self.storage, name)

    def write_temp_part(self, *args, **kwargs):
        stored = self.storage.write_temp_part(*args, **kwargs)
        # What cleanup_stale_sessions does: a conditional update of active, idle sessions.
        UploadSession.objects.filter(pk=self.session.pk, status__in=["init", "in_progress"]).update(
            status="failed", failure_reason="expired", finished_at=timezone.now()
        )
        return stored


def test_a_part_racing_expiry_is_refused_and_its_object_deleted(session, fs_storage):
    with pytest.raises(SessionGone) as refused:
        receive(session, 1, b"abcd", storage=ExpiringStorage(fs_storage, session))

    assert refused.value.code == "session_expired"
    assert temp_objects(fs_storage) == []
    assert not UploadPart.objects.exists()


def test_a_part_counted_before_expiry_keeps_the_session_alive(session, fs_storage):
    now = timezone.now()
    receive(session, 1, b"abcd", now=now)

    session.refresh_from_db()
    assert session.last_activity_at == now
    stale = UploadSession.objects.active().idle_since(now - timedelta(hours=24))
    assert not stale.exists()
