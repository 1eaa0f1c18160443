"""Property: whatever the classes, holds, ages, notices and order of runs, no file goes early.

No file is deleted before max(expires_at, notified_at + notice), none while on hold,
and every deletion has exactly one FileDeletion and one file.deleted event.
"""

import tempfile
from datetime import timedelta

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.models import FileDeletion, OutboxEvent, RetentionPolicy, UploadFile
from portal.services.legal_hold import release_legal_hold, set_legal_hold
from portal.services.retention import delete_expired_files, notify_expiring_files
from portal.storage import get_storage
from tests.factories import make_user
from tests.retention.helpers import NOW, stored_file

CODES = ["system-testing", "general", "financial"]
HOURS = st.integers(min_value=0, max_value=24 * 60).map(lambda h: timedelta(hours=h))

files = st.lists(
    st.fixed_dictionaries({"code": st.sampled_from(CODES), "age": HOURS, "held": st.booleans()}),
    min_size=1,
    max_size=6,
)
policies = st.fixed_dictionaries(
    {
        code: st.fixed_dictionaries(
            {
                "retention": st.one_of(st.none(), HOURS),
                "notice": st.integers(0, 96).map(lambda h: timedelta(hours=h)),
            }
        )
        for code in CODES
    }
)
# Each step: the clock moves on, then one operation.
steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=24 * 10).map(lambda h: timedelta(hours=h)),
        st.one_of(
            st.just(("notify",)),
            st.just(("delete",)),
            st.tuples(st.just("hold"), st.integers(0, 5)),
            st.tuples(st.just("release"), st.integers(0, 5)),
        ),
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=files, classes=policies, run=steps)
def test_no_file_is_deleted_early_or_on_hold_and_each_deletion_is_proven_once(specs, classes, run):
    UploadFile.objects.all().delete()
    FileDeletion.objects.all().delete()
    OutboxEvent.objects.all().delete()
    for code, values in classes.items():
        RetentionPolicy.objects.filter(code=code).update(**values)
    notice = {code: values["notice"] for code, values in classes.items()}
    with (
        tempfile.TemporaryDirectory() as root,
        override_settings(PORTAL_STORAGE_BACKEND="filesystem", PORTAL_STORAGE_ROOT=root),
    ):
        storage = get_storage()
        user = make_user()
        uploads = [
            stored_file(storage, code=spec["code"], stored_at=NOW - spec["age"], user=user)
            for spec in specs
        ]
        held = {u.pk for u, spec in zip(uploads, specs, strict=True) if spec["held"]}
        if held:
            set_legal_hold(file_ids=list(held), reason="property", now=NOW)
        now = NOW
        for advance, operation in run:
            now += advance
            if operation[0] == "notify":
                notify_expiring_files(now=now)
            elif operation[0] == "delete":
                before = {u.pk for u in UploadFile.objects.filter(status="stored")}
                delete_expired_files(now=now, storage=storage)
                gone = before - {u.pk for u in UploadFile.objects.filter(status="stored")}
                assert not gone & held, "a file on hold was deleted"
            else:
                target = uploads[operation[1] % len(uploads)]
                if UploadFile.objects.get(pk=target.pk).status != "stored":
                    continue
                if operation[0] == "hold":
                    set_legal_hold(file_ids=[target.pk], reason="property", now=now)
                    held.add(target.pk)
                else:
                    release_legal_hold(file_ids=[target.pk], now=now)
                    held.discard(target.pk)

    deleted = list(UploadFile.objects.filter(status="deleted").select_related("retention_policy"))
    proofs = {p.file_id: p for p in FileDeletion.objects.all()}
    assert set(proofs) == {u.pk for u in deleted}
    for upload in deleted:
        proof = proofs[upload.pk]
        earliest = max(proof.expires_at, proof.notified_at + notice[upload.retention_policy.code])
        assert proof.deleted_at >= earliest, "deleted before expiry + notice"
        assert not upload.legal_hold
        events = OutboxEvent.objects.filter(event_type="file.deleted", aggregate_id=str(upload.pk))
        assert events.count() == 1
        # The notice the proof names was sent, as an event, before the deletion.
        assert OutboxEvent.objects.filter(
            event_type="file.expiring",
            aggregate_id=str(upload.pk),
            created_at=proof.notified_at,
        ).exists()
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == len(deleted)
