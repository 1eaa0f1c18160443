import pytest
from django.urls import reverse

from portal.exceptions import AuthenticationFailed
from portal.models import ApiToken
from portal.services.tokens import authenticate_token, create_api_token
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_admin_action_revokes_selected_tokens(client):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    issued = create_api_token(user=make_user())
    create_api_token(user=make_user())

    response = client.post(
        reverse("admin:portal_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [issued.api_token.pk]},
        follow=True,
    )

    assert "Revoked 1 token." in response.content.decode()
    assert ApiToken.objects.filter(revoked_at__isnull=False).count() == 1
    with pytest.raises(AuthenticationFailed):
        authenticate_token(issued.plaintext)
