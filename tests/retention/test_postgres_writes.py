"""What the retention steps write on PostgreSQL: HOT deletion claims, one index per event key."""

import pytest
from django.db import connection
from django.utils import timezone

from portal.models import OutboxEvent, UploadFile
from portal.services.retention import delete_expired_files
from tests.environment import table_write_count
from tests.factories import make_user
from tests.retention.helpers import DAY, NOTICE, bulk_stored_files

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_deletion_claims_are_mostly_hot_updates_that_add_no_index_entries(fs_storage, storage_root):
    now = timezone.now()
    files = bulk_stored_files(
        user=make_user(),
        count=400,
        stored_at=now - 40 * DAY,
        notified_at=now - 2 * NOTICE,
        root=storage_root,
    )
    updated_before = table_write_count(UploadFile, "tuples_updated")
    hot_before = table_write_count(UploadFile, "tuples_hot_updated")

    result = delete_expired_files(now=now, dry_run=False)

    assert result.deleted == 400
    # Each file: one claim (HOT when its page has room) and one flip to deleted (never
    # HOT: status is indexed). Every row here is claimed in one transaction, so a page
    # kept 40% free holds new versions for about two thirds of its rows; in production
    # vacuum frees the notice's old versions first. With fillfactor 100 this is ~0.
    assert table_write_count(UploadFile, "tuples_updated") - updated_before == 800
    assert table_write_count(UploadFile, "tuples_hot_updated") - hot_before >= len(files) / 2


def test_the_event_key_has_one_index_the_unique_one():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [OutboxEvent._meta.db_table, "%(idempotency_key%"],
        )
        definitions = [row[0] for row in cursor.fetchall()]

    assert len(definitions) == 1 and "UNIQUE" in definitions[0], definitions
