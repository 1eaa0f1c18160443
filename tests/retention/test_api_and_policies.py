"""Retention classes through the API, policies and their audit, the admin."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from portal.exceptions import RetentionRefused
from portal.models import OutboxEvent, RetentionChange, RetentionPolicy, UploadFile, UploadSession
from portal.services.policies import save_policy
from tests.api.conftest import chunks_of
from tests.factories import make_user
from tests.retention.helpers import NOW, stored_file

pytestmark = pytest.mark.django_db


def upload(uploader, data, chunk, **fields):
    created = uploader.create(
        original_filename="invoice.pdf",
        total_size_bytes=len(data),
        chunk_size_bytes=chunk,
        **fields,
    )
    assert created.status_code == 201, created.json()
    session_id = created.json()["session_id"]
    for number, part in chunks_of(data, chunk).items():
        assert uploader.put_part(session_id, number, part).status_code == 201
    finalized = uploader.finalize(session_id)
    assert finalized.status_code == 200, finalized.json()
    return finalized.json()


def test_a_retention_class_sets_the_files_expiry_in_status_and_file_stored(
    uploader, storage, chunk_size
):
    body = upload(uploader, b"x" * (chunk_size + 1), chunk_size, retention_class="financial")

    upload_file = UploadFile.objects.get(pk=body["file_id"])
    assert upload_file.retention_policy.code == "financial"
    assert upload_file.expires_at == upload_file.stored_at + timedelta(days=365)
    retention = {"class": "financial", "expires_at": upload_file.expires_at.isoformat()}
    assert body["file"]["retention"] == retention
    assert uploader.status(body["session_id"]).json()["file"]["retention"] == retention
    event = OutboxEvent.objects.get(event_type="file.stored")
    assert event.payload["file"]["retention"] == retention


def test_no_retention_class_means_the_default_one(uploader, fs_storage, small_limits):
    body = upload(uploader, b"abcdefgh", 8)

    assert body["file"]["retention"]["class"] == "general"


@pytest.mark.parametrize("value", ["forever", "", 7, None])
def test_an_unknown_retention_class_is_refused_and_nothing_is_created(
    uploader, fs_storage, small_limits, value
):
    response = uploader.create(original_filename="a.bin", total_size_bytes=8, retention_class=value)

    if value is None:  # JSON null: as if absent
        assert response.status_code == 201
        return
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_retention_class"
    assert not UploadSession.objects.exists() and not UploadFile.objects.exists()


# -- policies -----------------------------------------------------------------------


def test_the_runbooks_classes_are_seeded_with_general_the_one_default():
    policies = {p.code: p for p in RetentionPolicy.objects.all()}

    assert {code: p.retention for code, p in policies.items()} == {
        "system-testing": timedelta(hours=24),
        "general": timedelta(days=30),
        "financial": timedelta(days=365),
        "legal": timedelta(days=7 * 365),
        "medical": timedelta(days=10 * 365),
    }
    assert [p.code for p in policies.values() if p.is_default] == ["general"]
    assert all(p.notice == timedelta(hours=48) for p in policies.values())


def test_a_policy_change_records_who_when_and_old_and_new_values():
    operator = make_user("dpo")
    policy = RetentionPolicy.objects.get(code="financial")
    policy.retention = timedelta(days=400)

    save_policy(policy=policy, user=operator, now=NOW)

    change = RetentionChange.objects.get(policy=policy)
    assert (change.changed_by, change.changed_by_username, change.created_at) == (
        operator,
        "dpo",
        NOW,
    )
    assert change.changes == {"retention": {"old": "P365DT00H00M00S", "new": "P400DT00H00M00S"}}


def test_making_a_policy_default_takes_the_default_from_the_other_one():
    medical = RetentionPolicy.objects.get(code="medical")
    medical.is_default = True

    save_policy(policy=medical, now=NOW)

    assert list(RetentionPolicy.objects.filter(is_default=True)) == [medical]
    general_change = RetentionChange.objects.get(policy__code="general")
    assert general_change.changes == {"is_default": {"old": True, "new": False}}


def test_the_default_cannot_simply_be_unset():
    general = RetentionPolicy.objects.get(code="general")
    general.is_default = False

    with pytest.raises(RetentionRefused) as refused:
        save_policy(policy=general)

    assert refused.value.code == "default_required"
    assert RetentionPolicy.objects.get(code="general").is_default


# -- admin --------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    user = make_user("operator", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="portal",
            codename__in=[
                "view_uploadfile",
                "change_uploadfile",
                "change_retentionpolicy",
                "view_retentionpolicy",
            ],
        )
    )
    client.force_login(user)
    return user


def test_editing_a_policy_in_the_admin_is_recorded(client, staff):
    policy = RetentionPolicy.objects.get(code="system-testing")
    url = reverse("admin:portal_retentionpolicy_change", args=[policy.pk])
    form = {
        "code": "system-testing",
        "name": "System testing",
        "retention": "2 00:00:00",
        "notice": "2 00:00:00",
        "changes-TOTAL_FORMS": "0",
        "changes-INITIAL_FORMS": "0",
    }

    response = client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:2000]
    change = RetentionChange.objects.get(policy=policy)
    assert change.changed_by == staff
    assert change.changes == {"retention": {"old": "P1DT00H00M00S", "new": "P2DT00H00M00S"}}


def test_unsetting_the_default_in_the_admin_is_a_form_error(client, staff):
    policy = RetentionPolicy.objects.get(code="general")
    url = reverse("admin:portal_retentionpolicy_change", args=[policy.pk])
    form = {
        "code": "general",
        "name": "General",
        "retention": "30 00:00:00",
        "notice": "2 00:00:00",
        "changes-TOTAL_FORMS": "0",
        "changes-INITIAL_FORMS": "0",
    }

    response = client.post(url, form)

    assert response.status_code == 200
    assert "make another policy the default" in response.content.decode()
    assert RetentionPolicy.objects.get(code="general").is_default


def hold_action(client, upload, action, reason="court order 12"):
    return client.post(
        reverse("admin:portal_uploadfile_changelist"),
        {"action": action, "_selected_action": [str(upload.pk)], "reason": reason},
        follow=True,
    )


def test_hold_actions_need_the_manage_legal_hold_permission(client, staff, fs_storage):
    upload = stored_file(fs_storage)

    response = hold_action(client, upload, "place_legal_hold")

    assert response.status_code == 200
    upload.refresh_from_db()
    assert not upload.legal_hold
    staff.user_permissions.add(Permission.objects.get(codename="manage_legal_hold"))

    response = hold_action(client, upload, "place_legal_hold")

    assert "Held 1 file" in response.content.decode()
    upload.refresh_from_db()
    assert (upload.legal_hold, upload.legal_hold_reason, upload.legal_hold_by) == (
        True,
        "court order 12",
        staff,
    )
    audit = RetentionChange.objects.get(file=upload)
    assert (audit.action, audit.changed_by_username) == ("hold_set", "operator")
    response = hold_action(client, upload, "release_legal_hold", reason="")
    assert "Released 1 file" in response.content.decode()
    assert RetentionChange.objects.filter(file=upload, action="hold_released").count() == 1


def test_a_hold_without_a_reason_changes_nothing(client, staff, fs_storage):
    staff.user_permissions.add(Permission.objects.get(codename="manage_legal_hold"))
    upload = stored_file(fs_storage)

    response = hold_action(client, upload, "place_legal_hold", reason="")

    assert "Nothing changed" in response.content.decode()
    upload.refresh_from_db()
    assert not upload.legal_hold and not RetentionChange.objects.exists()


def test_openapi_documents_retention_class_and_the_retention_block(client):
    document = json.loads(client.get("/uploads/openapi.json").content)
    schemas = document["components"]["schemas"]

    assert "retention_class" in schemas["SessionRequest"]["properties"]
    assert set(schemas["StoredFile"]["properties"]["retention"]["properties"]) == {
        "class",
        "expires_at",
    }


def test_the_file_admin_shows_retention_state_read_only(client, staff, fs_storage):
    upload = stored_file(fs_storage)

    response = client.get(reverse("admin:portal_uploadfile_change", args=[upload.pk]))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert not {"legal_hold", "expires_at", "retention_policy"} & set(form.fields)
