"""Every portal admin page renders for a superuser; secrets never reach list pages."""

import pytest
from django.contrib import admin
from django.urls import reverse

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
