"""Random call sequences never get a 500 nor put counters out of step with the part rows."""

import hashlib
from datetime import timedelta

import pytest
from django.db.models import Count, Sum
from django.utils import timezone
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from portal.models import UploadPart, UploadSession
from portal.services.tokens import create_api_token
from tests.api.conftest import UploadClient
from tests.factories import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_limits")]


def body_for(session_id: str, number: int, size: int, variant: str) -> bytes:
    seed = hashlib.sha256(f"{session_id}:{number}:{variant == 'other'}".encode()).digest()
    body = (seed * (size // 32 + 2))[:size]
    return {
        "right": body,
        "other": body,
        "short": body[:-1],
        "long": body + b"!",
        "empty": b"",
    }[variant]


class UploadCalls(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self):
        super().__init__()
        user = make_user()
        self.api = UploadClient(create_api_token(user=user).plaintext, user=user)
        self.known: dict[str, dict] = {}

    @rule(
        target=sessions,
        total=st.one_of(
            st.integers(min_value=1, max_value=24),
            st.integers(min_value=1, max_value=24),
            st.integers(max_value=1100),
        ),
        chunk=st.one_of(st.none(), st.none(), st.integers(min_value=2, max_value=70)),
        key=st.sampled_from(["", "", "", "a"]),
        filename=st.one_of(st.just("f.bin"), st.text(max_size=300)),
    )
    def create(self, total, chunk, key, filename):
        fields = {"original_filename": filename, "total_size_bytes": total}
        if chunk is not None:
            fields["chunk_size_bytes"] = chunk
        if key:
            fields["idempotency_key"] = key
        response = self.api.create(**fields)
        event(f"create {response.status_code}")
        assert response.status_code in (200, 201, 400, 409, 413)
        if response.status_code in (200, 201):
            session = response.json()
            self.known[session["session_id"]] = session
            return session["session_id"]
        return "not-a-session"

    @rule(
        session_id=sessions,
        which=st.sampled_from(["valid"] * 6 + ["zero", "beyond"]),
        index=st.integers(min_value=0, max_value=10**6),
        variant=st.sampled_from(["right"] * 4 + ["other", "short", "long", "empty"]),
        checksum=st.sampled_from([None, None, "right", "wrong"]),
    )
    def put_part(self, session_id, which, index, variant, checksum):
        session = self.known.get(session_id)
        parts = session["total_parts"] if session else 1
        number = {"valid": 1 + index % parts, "zero": 0, "beyond": parts + 1 + index % 3}[which]
        size = 8
        if session and which == "valid":
            chunk, total = session["chunk_size_bytes"], session["total_size_bytes"]
            size = chunk if number < parts else total - (number - 1) * chunk
        body = body_for(session_id, number, size, variant)
        headers = {}
        if checksum:
            digest = hashlib.sha256(body if checksum == "right" else b"nope").hexdigest()
            headers["X-Part-SHA256"] = digest
        response = self.api.put_part(session_id, number, body, **headers)
        event(f"put {response.status_code}")
        assert response.status_code in (200, 201, 400, 404, 409, 410, 411, 413, 422)

    @rule(session_id=sessions)
    def send_every_part_last_first(self, session_id):
        session = self.known.get(session_id)
        if session is None:
            return
        chunk, total, parts = (
            session["chunk_size_bytes"],
            session["total_size_bytes"],
            session["total_parts"],
        )
        for number in range(parts, 0, -1):
            size = chunk if number < parts else total - (number - 1) * chunk
            response = self.api.put_part(
                session_id, number, body_for(session_id, number, size, "right")
            )
            event(f"put {response.status_code}")
            assert response.status_code in (200, 201, 409, 410)

    @rule(session_id=sessions, sha=st.sampled_from([None, None, None, "wrong"]))
    def finalize(self, session_id, sha):
        fields = {"sha256": "0" * 64} if sha else {}
        response = self.api.finalize(session_id, **fields)
        event(f"finalize {response.status_code}")
        assert response.status_code in (200, 404, 409, 410, 422)

    @rule(session_id=sessions)
    def status(self, session_id):
        response = self.api.status(session_id)
        assert response.status_code in (200, 404)

    @rule(session_id=consumes(sessions))
    def abort(self, session_id):
        response = self.api.abort(session_id)
        assert response.status_code in (204, 404, 409, 410)

    @rule(session_id=sessions)
    def let_time_pass(self, session_id):
        if session_id in self.known:
            UploadSession.objects.filter(pk=session_id).update(
                last_activity_at=timezone.now() - timedelta(hours=25)
            )

    @invariant()
    def counters_match_part_rows(self):
        for session in UploadSession.objects.filter(pk__in=list(self.known)).annotate(
            part_rows=Count("parts"), part_bytes=Sum("parts__size_bytes")
        ):
            assert session.completed_parts == session.part_rows
            assert session.bytes_received == (session.part_bytes or 0)
            assert session.completed_parts <= session.total_parts

    @invariant()
    def stored_files_have_every_part(self):
        for session in UploadSession.objects.filter(pk__in=list(self.known), status="complete"):
            assert session.completed_parts == session.total_parts
            assert session.file.size_bytes == session.total_size_bytes
            assert UploadPart.objects.filter(session=session).count() == session.total_parts


def test_random_call_sequences_keep_the_api_consistent(fs_storage):
    run_state_machine_as_test(
        UploadCalls,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
