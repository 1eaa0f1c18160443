"""Property: whatever the mix of sessions, cleanup keeps what is live and removes what is done."""

import io
import os
import tempfile
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.models import UploadFile, UploadSession, new_id
from portal.services.cleanup import run_cleanup
from portal.storage import get_storage
from tests.cleanup.helpers import GRACE, TTL, temp_keys
from tests.factories import make_session, make_user

Status = UploadSession.Status
# Whole minutes, never exactly on the grace or TTL boundary.
AGES = (
    st.integers(min_value=0, max_value=3 * 24 * 60)
    .filter(lambda minutes: minutes not in (30, 24 * 60))
    .map(lambda minutes: timedelta(minutes=minutes))
)

session_specs = st.lists(
    st.fixed_dictionaries(
        {"status": st.sampled_from(list(Status)), "age": AGES, "parts": st.integers(0, 3)}
    ),
    max_size=8,
)
orphan_ages = st.lists(AGES, max_size=4)


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=session_specs, orphans=orphan_ages, dry_run=st.booleans())
def test_cleanup_never_removes_live_objects_and_leaves_nothing_done_behind(specs, orphans, dry_run):
    UploadSession.objects.all().delete()
    UploadFile.objects.all().delete()
    now = timezone.now()
    with (
        tempfile.TemporaryDirectory() as root,
        override_settings(PORTAL_STORAGE_BACKEND="filesystem", PORTAL_STORAGE_ROOT=root),
    ):
        storage = get_storage()
        user = make_user()
        must_stay, must_go = set(), set()
        for spec in specs:
            session = make_session(
                status=spec["status"],
                user=user,
                parts=spec["parts"],
                storage=storage,
                last_activity_at=now - spec["age"],
            )
            keys = set(session.parts.values_list("temp_storage_key", flat=True))
            done = session.is_terminal and spec["age"] > GRACE
            (must_go if done else must_stay).update(keys)
        crashed = new_id()  # a session whose row is gone (never committed, or pruned)
        for number, age in enumerate(orphans, start=1):
            key = storage.write_temp_part(crashed, number, io.BytesIO(b"x"), max_bytes=1).key
            written = (now - age).timestamp()
            os.utime(storage.root / key, (written, written))
            (must_go if age > GRACE else must_stay).add(key)

        report = run_cleanup(trigger="beat", now=now, dry_run=dry_run)
        left = temp_keys(storage)

    assert report.status == "success"
    assert must_stay <= left, "an object cleanup had to keep is gone"
    if dry_run:
        assert left == must_stay | must_go, "a dry run changed storage"
    else:
        assert not must_go & left, "an object of a finished session outlived the grace period"
    deleted = (
        report.counts["orphan_temp_parts"]["deleted"]
        + report.counts["orphan_storage_objects"]["deleted"]
    )
    assert deleted == len(must_go)
    active = [s for s in specs if s["status"] in UploadSession.ACTIVE_STATUSES]
    stale = [s for s in active if s["age"] > TTL]
    assert report.counts["stale_sessions"]["expired"] == len(stale)
    assert UploadSession.objects.active().count() == len(active) - (0 if dry_run else len(stale))
