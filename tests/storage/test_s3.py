"""What only the S3 adapter promises: its clients' limits, shared use across threads."""

import hashlib
import io
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.test import override_settings

from portal.storage.s3 import S3Storage


def test_work_client_has_explicit_timeouts_and_retries(s3_storage):
    config = s3_storage.client.meta.config

    assert (config.connect_timeout, config.read_timeout) == (5, 60)
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}


def test_check_client_fails_fast_and_its_timeouts_can_be_set(s3_settings):
    with override_settings(**s3_settings):
        storage = S3Storage(temp_prefix="tmp/", final_prefix="files/", check_connect_timeout=0.2)
    config = storage.check_client.meta.config

    assert (config.connect_timeout, config.read_timeout) == (0.2, 0.5)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}  # no retry
    assert storage.check_client is not storage.client


def test_django_storages_settings_reach_the_client(s3_settings):
    with override_settings(**s3_settings, AWS_S3_ADDRESSING_STYLE="path"):
        storage = S3Storage(temp_prefix="tmp/", final_prefix="files/")

    assert storage.bucket == s3_settings["AWS_STORAGE_BUCKET_NAME"]
    assert storage.client.meta.endpoint_url == s3_settings["AWS_S3_ENDPOINT_URL"]
    assert storage.client.meta.region_name == s3_settings["AWS_S3_REGION_NAME"]
    assert storage.client.meta.config.s3["addressing_style"] == "path"


def test_one_adapter_serves_many_threads(s3_storage):
    session_id = uuid.uuid4()

    def write_and_read(number):
        data = f"part {number}".encode() * 1000
        stored = s3_storage.write_temp_part(
            session_id, number, io.BytesIO(data), max_bytes=len(data)
        )
        with s3_storage.open(stored.key) as body:
            return stored.sha256 == hashlib.sha256(body.read()).hexdigest()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(write_and_read, range(1, 33)))
