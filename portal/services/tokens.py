"""Bearer tokens of the upload API: issued once, stored as a SHA-256 hash, revocable."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from portal.db import unique_row
from portal.exceptions import AuthenticationFailed
from portal.logs import get_logger
from portal.models import ApiToken

log = get_logger(__name__)

TOKEN_PREFIX = "ptk_"
# Recording every use would write a row on every request; once a minute is enough to
# tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    api_token: ApiToken
    plaintext: str  # shown once to the caller, never stored or logged

    def as_dict(self) -> dict:
        return {
            "id": str(self.api_token.pk),
            "prefix": self.api_token.prefix,
            "user": self.api_token.user.get_username(),
        }


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_token(*, user, name: str = "", now=None) -> IssuedToken:
    """Issue a new token for ``user``; only its hash and a short display prefix are kept."""
    now = now or timezone.now()
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    api_token = ApiToken.objects.create(
        user=user,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[: ApiToken._meta.get_field("prefix").max_length],
        created_at=now,
    )
    log.info("token.created", token_id=str(api_token.pk), user_id=user.pk)
    return IssuedToken(api_token=api_token, plaintext=plaintext)


def authenticate_token(raw: str, *, now=None):
    """Return the active user owning the token ``raw``; ``AuthenticationFailed`` otherwise."""
    if not raw:
        raise AuthenticationFailed("Missing bearer token.", code="missing_token")
    api_token = unique_row(
        ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw))
    )
    if api_token is None or not api_token.user.is_active:
        raise AuthenticationFailed("Invalid bearer token.", code="invalid_token")
    if api_token.revoked_at is not None:
        raise AuthenticationFailed("This token has been revoked.", code="revoked_token")
    now = now or timezone.now()
    if api_token.last_used_at is None or api_token.last_used_at < now - LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests of one token write at most once a minute.
        ApiToken.objects.filter(pk=api_token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return api_token.user


def revoke_api_token(*, api_token: ApiToken, now=None) -> bool:
    """Revoke ``api_token``; False when it was already revoked."""
    now = now or timezone.now()
    revoked = ApiToken.objects.filter(pk=api_token.pk, revoked_at__isnull=True).update(
        revoked_at=now, updated_at=now
    )
    if revoked:
        log.info("token.revoked", token_id=str(api_token.pk))
    return bool(revoked)
