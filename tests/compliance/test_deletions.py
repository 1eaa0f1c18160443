"""deletion_log and verify_deletions on both adapters."""

import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from portal.models import FileDeletion
from portal.services.cleanup import run_cleanup
from portal.services.retention import erase_file
from tests.compliance.helpers import plant
from tests.factories import make_user
from tests.retention.helpers import stored_file

pytestmark = pytest.mark.django_db


def run(command, *args) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command(command, *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def erased(storage, *, name="contract.pdf"):
    file = stored_file(storage, stored_at=timezone.now() - timedelta(days=2))
    file.original_filename = name
    file.save(update_fields=["original_filename"])
    erase_file(file_id=file.pk, reason="owner asked", actor=dpo())
    return FileDeletion.objects.get(file_id=file.pk)


def dpo():
    return get_user_model().objects.filter(username="dpo").first() or make_user(username="dpo")


def expired(storage):
    """A file deleted by retention: notified, then deleted after its notice."""
    now = timezone.now()
    file = stored_file(storage, stored_at=now - timedelta(days=40))
    run_cleanup(trigger="beat", now=now - timedelta(days=3), cycle="light")
    run = run_cleanup(trigger="beat", now=now, cycle="light")
    proof = FileDeletion.objects.get(file_id=file.pk)
    assert str(proof.cleanup_run_id) == run.run_id
    return proof


# -- deletion_log ---------------------------------------------------------------------


def test_deletion_log_by_file_key_and_filename(storage):
    proof = erased(storage)
    other = expired(storage)

    by_file, _ = run("deletion_log", "--file", str(proof.file_id), "--json")
    by_key, _ = run("deletion_log", "--key", proof.storage_key, "--json")
    by_name, _ = run("deletion_log", "--filename", "CONTRACT", "--json")

    for output in (by_file, by_key, by_name):
        (entry,) = json.loads(output)["entries"]
        assert entry["file_id"] == str(proof.file_id)
        assert entry["reason"] == "erasure_request" and entry["note"] == "owner asked"
        assert entry["by"] == {"operator": "dpo"}
        assert entry["storage"] == {
            "backend": storage.backend,
            "bucket": storage.bucket,
            "key": proof.storage_key,
        }
    assert json.loads(by_file)["file_status"] == "deleted"
    text, error = run("deletion_log", "--file", str(other.file_id))
    assert error is None
    assert f"by cleanup run {other.cleanup_run_id}, reason retention_expired" in text
    assert "class general (30.0 days)" in text
    assert f"notified {other.notified_at.isoformat()}" in text


def test_deletion_log_of_a_file_never_deleted_says_so(fs_storage):
    file = stored_file(fs_storage)
    text, error = run("deletion_log", "--file", str(file.pk))
    assert error is None
    assert "Deletions matching file" in text and ": 0" in text
    assert "its status is stored" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--file", "not-a-uuid"], "--file must be a file id"),
        (["--file", "x", "--key", "y"], "not allowed with argument"),
        ([], "one of the arguments --file --key --filename is required"),
    ],
)
def test_deletion_log_refuses_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("deletion_log", *args, stdout=io.StringIO())


# -- verify_deletions -----------------------------------------------------------------


def test_verify_deletions_passes_when_every_object_is_gone(storage):
    erased(storage)
    expired(storage)
    text, error = run("verify_deletions")
    assert error is None
    assert "2 checked, 0 present" in text and "Verified" in text


def test_a_resurrected_object_fails_verification(storage):
    kept_gone = erased(storage)
    restored = erased(storage, name="restored.pdf")
    plant(storage, restored.storage_key, b"back from a backup")

    text, error = run("verify_deletions", "--json")

    assert error is not None and "1 deleted object(s) present" in str(error)
    body = json.loads(text)
    assert body["ok"] is False and (body["checked"], body["found"]) == (2, 1)
    assert body["present"] == [{"file_id": str(restored.file_id), "key": restored.storage_key}]
    assert kept_gone.storage_key not in text


def test_verify_deletions_since_skips_older_proofs(storage):
    old = erased(storage)
    FileDeletion.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(days=90))
    plant(storage, old.storage_key)
    since = f"{timezone.now() - timedelta(days=7):%Y-%m-%d}"

    text, error = run("verify_deletions", "--since", since)
    assert error is None and "0 checked" in text
    _, error = run("verify_deletions")
    assert error is not None


def test_verify_deletions_does_not_check_proofs_of_another_storage(fs_storage):
    proof = erased(fs_storage)
    FileDeletion.objects.filter(pk=proof.pk).update(storage_backend="s3", storage_bucket="old")
    plant(fs_storage, proof.storage_key)
    text, error = run("verify_deletions")
    assert error is None and "0 checked" in text and "1 of another storage" in text


def test_verify_deletions_refuses_a_bad_since():
    with pytest.raises(CommandError, match="--since must be a date"):
        call_command("verify_deletions", "--since", "last week", stdout=io.StringIO())
