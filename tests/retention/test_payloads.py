"""On PostgreSQL the retention batches build their events and proofs in SQL; they must
write exactly what the Python path (every other database) writes."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import JSONField
from django.db.models.expressions import RawSQL

from portal.db import NEW_ID_SQL
from portal.models import FileDeletion, OutboxEvent, UploadFile, new_id
from portal.services import retention
from portal.services.retention import notify_expiring_files, record_deletions
from portal.services.sessions import FileInfo
from tests.environment import require, uses_postgres
from tests.retention.helpers import DAY, NOW, stored_file

pytestmark = pytest.mark.django_db
REASON = FileDeletion.Reason.ERASURE_REQUEST


@pytest.fixture
def varied_files(fs_storage):
    """Files whose payloads test the SQL rendering: whole and fractional seconds, quotes
    and non-ASCII in names, no retention class."""
    require(uses_postgres(), "needs PostgreSQL: set DATABASE_URL=postgres://...")
    whole = stored_file(fs_storage, stored_at=NOW - 29 * DAY)
    fraction = stored_file(fs_storage, stored_at=NOW - 29 * DAY + timedelta(microseconds=7))
    UploadFile.objects.filter(pk=fraction.pk).update(original_filename='Über "q"\\x.pdf')
    classless = stored_file(fs_storage, stored_at=NOW - 29 * DAY)
    UploadFile.objects.filter(pk=classless.pk).update(retention_policy=None, expires_at=None)
    return [whole, fraction, classless]


def test_ids_made_in_sql_are_uuid7s_of_the_current_millisecond(varied_files):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {NEW_ID_SQL} FROM generate_series(1, 3)")
        made = [row[0] for row in cursor.fetchall()]
    python = new_id()

    assert len(set(made)) == 3
    for made_id in made:
        assert (made_id.version, made_id.variant) == (7, uuid.RFC_4122)
        # The first 48 bits are Unix milliseconds, as in Python's.
        assert abs((made_id.int >> 80) - (python.int >> 80)) < 60_000


def written(event_type):
    """Each event's payload by file id, without the event's own id."""
    events = OutboxEvent.objects.filter(event_type=event_type)
    return {e.aggregate_id: {**e.payload, "event_id": None} for e in events}


def test_file_info_built_in_sql_equals_as_dict(varied_files):
    info = RawSQL(FileInfo.sql("portal_uploadfile", "'general'"), (), output_field=JSONField())
    rows = UploadFile.objects.filter(pk__any=[f.pk for f in varied_files]).annotate(info=info)
    for row in rows:
        assert row.info == FileInfo.of(row, retention_class="general").as_dict()


def test_notices_built_in_sql_equal_the_python_path(varied_files):
    values = {"expiring_notified_at": NOW, "updated_at": NOW}
    with transaction.atomic():
        retention._notify_batch(retention.notice_due(NOW), size=10, values=values, now=NOW)
        python = written("file.expiring")
        transaction.set_rollback(True)

    assert notify_expiring_files(now=NOW).notified == 2

    assert written("file.expiring") == python and len(python) == 2
    for event in OutboxEvent.objects.all():
        assert event.payload["event_id"] == str(event.pk)


def test_deletion_records_built_in_sql_equal_the_python_path(varied_files):
    UploadFile.objects.update(expiring_notified_at=NOW - 3 * DAY)
    files = UploadFile.objects.order_by("pk")
    targets = [retention._Target(f.pk, f.storage_key, f.size_bytes) for f in files]
    options = {"now": NOW, "reason": REASON, "run_id": None, "username": "", "note": "asked"}
    values = {"status": "deleted", "deleted_at": NOW, "retention_claimed_until": None}

    def proofs():
        # Ids are new on each path; updated_at is the write's own time.
        ignored = {"_state": None, "id": None, "updated_at": None}
        return {p.file_id: {**p.__dict__, **ignored} for p in FileDeletion.objects.all()}

    with transaction.atomic():
        retention._record_batch([f.pk for f in files], values=values, **options)
        python_events, python_proofs = written("file.deleted"), proofs()
        transaction.set_rollback(True)

    recorded = record_deletions(targets, now=NOW, reason=REASON, note="asked")

    assert len(recorded) == 3 and len(python_proofs) == 3
    assert written("file.deleted") == python_events
    assert proofs() == python_proofs
