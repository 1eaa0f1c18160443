"""Counters stay exact under parallel PUTs, duplicates included (PostgreSQL row locks)."""

import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Count, Sum

from portal.models import UploadPart, UploadSession
from tests.api.conftest import UploadClient, chunks_of, temp_objects

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CHUNK = 8


def test_parallel_puts_with_duplicates_keep_counters_exact(uploader, fs_storage, small_limits):
    data = os.urandom(30 * CHUNK - 3)
    session_id = uploader.create(original_filename="a.bin", total_size_bytes=len(data)).json()[
        "session_id"
    ]
    parts = chunks_of(data, CHUNK)
    # Every part three times, one copy with conflicting content, shuffled.
    sends = [(n, body) for n, body in parts.items() for _ in range(3)]
    sends += [(n, bytes(len(parts[n]))) for n in (2, 7, 11)]
    random.Random(7).shuffle(sends)
    start = threading.Barrier(6)

    def send(batch):
        client = UploadClient(uploader.token)
        start.wait()
        try:
            return [client.put_part(session_id, n, body).status_code for n, body in batch]
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        statuses = [s for batch in pool.map(send, [sends[i::6] for i in range(6)]) for s in batch]

    assert statuses.count(201) == len(parts)
    assert set(statuses) <= {200, 201, 409}
    session = UploadSession.objects.get()
    rows = UploadPart.objects.filter(session=session).aggregate(
        n=Count("id"), size=Sum("size_bytes")
    )
    assert session.completed_parts == rows["n"] == len(parts)
    assert session.bytes_received == rows["size"] == len(data)
    assert sorted(temp_objects(fs_storage)) == sorted(
        UploadPart.objects.values_list("temp_storage_key", flat=True)
    )
    assert uploader.finalize(session_id).json()["file"]["size_bytes"] == len(data)
