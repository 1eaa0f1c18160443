"""Property (issue 11): whatever lies under the temp prefix, and whatever the ages and the
grace period, cleanup never deletes a foreign key or an object of an active session,
and deletes every object of its own that is eligible. Both adapters.

Foreign keys come in every shape: near-misses of the part pattern (one mutation of a
real part key) and arbitrary names. The filesystem stages a random age per object; S3
stamps LastModified itself, so there every object has one random age (the run's clock
is moved on instead).
"""

import io
import os
import tempfile
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from portal.models import CleanupRun, UploadFile, UploadSession, new_id
from portal.services.cleanup import run_cleanup
from portal.storage import get_storage, keys
from tests.cleanup.helpers import TTL, temp_keys
from tests.factories import make_session, make_user

Status = UploadSession.Status
MINUTES = st.integers(min_value=0, max_value=240)

MUTATIONS = [
    lambda key: "tmp/" + key[4:].upper(),
    lambda key: key + ".bak",
    lambda key: key[: -len(".part")],
    lambda key: key[:-6] + ".part",  # one hex digit short
    lambda key: key[:-5] + "0.part",  # one hex digit long
    lambda key: key.replace("/", "/x/", 2).replace("/x/", "/", 1),  # a folder deeper
    lambda key: "tmp/" + key.split("/", 2)[2],  # no shard folder
    lambda key: key[:4] + ("00" if key[4:6] != "00" else "11") + key[6:],  # wrong shard
    lambda key: key[:-44] + "000000" + key[-38:],  # part number 0
    lambda key: key.replace("-", "_", 1),
    lambda key: key[:-37] + "g" + key[-36:],  # a non-hex digit in the suffix
]


@st.composite
def near_miss_keys(draw):
    key = keys.temp_part_key("tmp/", draw(st.uuids()), draw(st.integers(1, 10_000)))
    return draw(st.sampled_from(MUTATIONS))(key)


SEGMENT = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,16}", fullmatch=True)
arbitrary_keys = st.lists(SEGMENT, min_size=1, max_size=3).map(
    lambda parts: "tmp/" + "/".join(parts)
)
foreign_keys = st.lists(st.one_of(near_miss_keys(), arbitrary_keys), max_size=8, unique=True)

sessions = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(list(Status)),
            "age": st.integers(0, 48 * 60).filter(lambda m: m != 24 * 60),  # never on the TTL
            "recorded": st.integers(0, 2),
            "unrecorded": st.lists(MINUTES, max_size=2),  # ages of objects without a row
        }
    ),
    max_size=5,
)
ghosts = st.lists(MINUTES, max_size=3)  # objects of sessions with no row at all


def reset():
    CleanupRun.objects.all().delete()
    UploadSession.objects.all().delete()
    UploadFile.objects.all().delete()


class Plan:
    """What the storage holds before the run, and what must stay or go."""

    def __init__(self, storage, now, s3_age):
        self.storage, self.now, self.s3_age = storage, now, s3_age
        self.foreign, self.stay, self.go = set(), set(), set()

    def age(self, minutes) -> int:
        return self.s3_age if self.storage.backend == "s3" else minutes

    def stage(self, key, minutes):
        if self.storage.backend == "filesystem":
            when = (self.now - timedelta(minutes=minutes)).timestamp()
            os.utime(self.storage.root / key, (when, when))

    def plant_foreign(self, key):
        if self.storage.backend == "s3":
            self.storage.client.put_object(Bucket=self.storage.bucket, Key=key, Body=b"f")
        else:
            path = self.storage.root / key
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"f")
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                return  # a name the filesystem cannot hold beside the others
            self.stage(key, 10_000)
        self.foreign.add(key)

    def write_own(self, session_id, number, minutes, *, eligible):
        key = self.storage.write_temp_part(session_id, number, io.BytesIO(b"o"), max_bytes=1).key
        self.stage(key, minutes)
        (self.go if eligible else self.stay).add(key)


def check_cleanup_owns_what_it_deletes(storage, specs, ghost_ages, foreign, grace, s3_age):
    assume(storage.backend != "s3" or s3_age != grace)
    assume(all(age != grace for spec in specs for age in spec["unrecorded"] + [spec["age"]]))
    assume(all(age != grace for age in ghost_ages))
    reset()
    offset = timedelta(minutes=s3_age) if storage.backend == "s3" else timedelta(0)
    plan = Plan(storage, timezone.now() + offset, s3_age)
    user = make_user()
    for spec in specs:
        session_time = plan.now - timedelta(minutes=spec["age"])
        session = make_session(
            status=spec["status"],
            user=user,
            parts=spec["recorded"],
            storage=storage,
            last_activity_at=session_time,
        )
        recorded = set(session.parts.values_list("temp_storage_key", flat=True))
        terminal_past_grace = session.is_terminal and spec["age"] > grace
        (plan.go if terminal_past_grace else plan.stay).update(recorded)
        # Active after the run: still init/in_progress and not idle past the TTL.
        active = not session.is_terminal and timedelta(minutes=spec["age"]) < TTL
        for number, minutes in enumerate(spec["unrecorded"], start=spec["recorded"] + 1):
            age = plan.age(minutes)
            plan.write_own(session.pk, number, minutes, eligible=not active and age > grace)
    ghost = new_id()
    for number, minutes in enumerate(ghost_ages, start=1):
        plan.write_own(ghost, number, minutes, eligible=plan.age(minutes) > grace)
    for key in foreign:
        plan.plant_foreign(key)

    with override_settings(PORTAL_CLEANUP_GRACE_MINUTES=grace):
        report = run_cleanup(trigger="beat", now=plan.now)
    left = temp_keys(storage)

    assert report.status == "success", report.errors
    assert plan.foreign <= left, f"foreign keys deleted: {plan.foreign - left}"
    assert plan.stay <= left, f"objects cleanup had to keep are gone: {plan.stay - left}"
    assert not plan.go & left, f"eligible objects left: {plan.go & left}"
    listed = storage.backend == "filesystem" or s3_age > grace  # old enough to be listed
    expected_foreign = len(plan.foreign) if listed else 0
    assert report.counts["orphan_storage_objects"]["foreign"] == expected_foreign


PROPERTY = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ARGUMENTS = dict(
    specs=sessions,
    ghost_ages=ghosts,
    foreign=foreign_keys,
    grace=st.integers(0, 120),
    s3_age=MINUTES,
)


@pytest.mark.django_db
@settings(max_examples=40, **PROPERTY)
@given(**ARGUMENTS)
def test_filesystem_cleanup_deletes_only_its_own_eligible_objects_foreign_(
    specs, ghost_ages, foreign, grace, s3_age
):
    with (
        tempfile.TemporaryDirectory() as root,
        override_settings(PORTAL_STORAGE_BACKEND="filesystem", PORTAL_STORAGE_ROOT=root),
    ):
        check_cleanup_owns_what_it_deletes(get_storage(), specs, ghost_ages, foreign, grace, 0)


@pytest.mark.django_db
@settings(max_examples=12, **PROPERTY)
@given(**ARGUMENTS)
def test_s3_cleanup_deletes_only_its_own_eligible_objects_foreign_(
    s3_storage, specs, ghost_ages, foreign, grace, s3_age
):
    listed = s3_storage.client.list_objects_v2(Bucket=s3_storage.bucket).get("Contents", [])
    if listed:
        s3_storage.client.delete_objects(
            Bucket=s3_storage.bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listed]}
        )
    check_cleanup_owns_what_it_deletes(s3_storage, specs, ghost_ages, foreign, grace, s3_age)
