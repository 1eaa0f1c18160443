from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from portal.exceptions import AuthenticationFailed
from portal.models import ApiToken
from portal.services.tokens import (
    authenticate_token,
    create_api_token,
    hash_token,
    revoke_api_token,
)
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_only_the_hash_and_a_prefix_are_stored():
    issued = create_api_token(user=make_user(), name="ci")

    row = ApiToken.objects.get()
    assert issued.plaintext.startswith("ptk_")
    assert row.token_hash == hash_token(issued.plaintext) != issued.plaintext
    assert issued.plaintext.startswith(row.prefix)
    assert len(row.prefix) == 12
    assert issued.plaintext not in str(ApiToken.objects.values().get())


def test_authenticate_returns_the_owner():
    user = make_user()
    issued = create_api_token(user=user)

    assert authenticate_token(issued.plaintext) == user


@pytest.mark.parametrize("raw", ["", "ptk_wrong"])
def test_unknown_tokens_are_refused(raw):
    create_api_token(user=make_user())

    with pytest.raises(AuthenticationFailed):
        authenticate_token(raw)


def test_revoked_tokens_are_refused():
    issued = create_api_token(user=make_user())

    assert revoke_api_token(api_token=issued.api_token) is True
    assert revoke_api_token(api_token=issued.api_token) is False
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate_token(issued.plaintext)
    assert refused.value.code == "revoked_token"


def test_last_use_is_written_at_most_once_a_minute(django_assert_num_queries):
    issued = create_api_token(user=make_user())
    now = timezone.now()

    with django_assert_num_queries(2):  # read + first write
        authenticate_token(issued.plaintext, now=now)
    with django_assert_num_queries(1):  # read only
        authenticate_token(issued.plaintext, now=now + timedelta(seconds=59))
    with django_assert_num_queries(2):
        authenticate_token(issued.plaintext, now=now + timedelta(seconds=61))

    assert ApiToken.objects.get().last_used_at == now + timedelta(seconds=61)


def test_create_api_token_command_prints_the_token_once(capsys):
    make_user("alice")

    call_command("create_api_token", "alice", "--name", "laptop")

    out, err = capsys.readouterr()
    token = out.strip()
    row = ApiToken.objects.get()
    assert (row.user.username, row.name, row.token_hash) == ("alice", "laptop", hash_token(token))
    assert token not in err


def test_create_api_token_command_names_an_unknown_user():
    with pytest.raises(CommandError, match="USERNAME: no user named 'nobody'"):
        call_command("create_api_token", "nobody")
    assert not ApiToken.objects.exists()
