"""Every portal admin page renders for a superuser; secrets never reach list pages."""

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from portal.models import ApiToken, WebhookEndpoint
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db

PORTAL_MODELS = [model for model in admin.site._registry if model._meta.app_label == "portal"]


@pytest.fixture
def admin_client(client):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("model", PORTAL_MODELS, ids=lambda m: m.__name__)
def test_changelist_renders(admin_client, model):
    make_session(parts=2)
    url = reverse(f"admin:portal_{model._meta.model_name}_changelist")

    assert admin_client.get(url).status_code == 200


def test_session_change_page_shows_its_parts(admin_client):
    session = make_session(parts=2)

    response = admin_client.get(reverse("admin:portal_uploadsession_change", args=[session.pk]))

    assert response.status_code == 200
    assert session.parts.first().temp_storage_key in response.content.decode()


def test_secrets_are_not_listed(admin_client):
    user = make_user()
    ApiToken.objects.create(user=user, token_hash="f" * 64, prefix="abcd1234")
    WebhookEndpoint.objects.create(url="https://hooks.example/x", secret="whsec_topsecret")

    tokens = admin_client.get(reverse("admin:portal_apitoken_changelist")).content.decode()
    endpoints = admin_client.get(
        reverse("admin:portal_webhookendpoint_changelist")
    ).content.decode()

    assert "f" * 64 not in tokens
    assert "whsec_topsecret" not in endpoints


@pytest.mark.parametrize("model", ["uploadsession", "uploadfile"])
def test_service_owned_rows_are_read_only_and_never_added(admin_client, model):
    session = make_session(parts=1)
    obj = session if model == "uploadsession" else session.file
    change = reverse(f"admin:portal_{model}_change", args=[obj.pk])

    page = admin_client.get(change)
    posted = admin_client.post(change, {"status": "complete", "storage_key": "x", "sha256": "0"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert 'name="status"' not in page.content.decode()
    assert posted.status_code == 403
    obj.refresh_from_db()
    assert obj.status != "complete"
    assert admin_client.get(reverse(f"admin:portal_{model}_add")).status_code == 403
    assert (
        admin_client.get(reverse(f"admin:portal_{model}_delete", args=[obj.pk])).status_code == 403
    )


def test_revocation_is_one_way_the_change_form_cannot_clear_it(admin_client):
    user = make_user()
    token = ApiToken.objects.create(user=user, token_hash="e" * 64, prefix="efgh5678")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    change = reverse("admin:portal_apitoken_change", args=[token.pk])

    page = admin_client.get(change).content.decode()
    response = admin_client.post(
        change, {"name": "renamed", "revoked_at_0": "", "revoked_at_1": ""}
    )

    assert 'name="revoked_at' not in page and 'name="user"' not in page
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.name == "renamed" and token.revoked_at is not None
    assert admin_client.get(reverse("admin:portal_apitoken_add")).status_code == 403


def test_revoke_action_calls_the_service_and_says_how_many(admin_client):
    user = make_user()
    tokens = [
        ApiToken.objects.create(user=user, token_hash=c * 64, prefix=c * 8) for c in ("a", "b")
    ]
    changelist = reverse("admin:portal_apitoken_changelist")

    response = admin_client.post(
        changelist,
        {"action": "revoke_tokens", "_selected_action": [t.pk for t in tokens]},
        follow=True,
    )

    assert "Revoked 2 tokens." in response.content.decode()
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 0
