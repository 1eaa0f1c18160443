"""Bearer-token authentication of the upload API (``Authorization: Bearer <token>``)."""

from portal.exceptions import AuthenticationFailed
from portal.services.tokens import authenticate_token


def bearer_token(request) -> str:
    """The token of the ``Authorization`` header, or "" when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def authenticate_request(request):
    """The user the request's bearer token belongs to; ``AuthenticationFailed`` otherwise."""
    token = bearer_token(request)
    if not token:
        raise AuthenticationFailed(
            "Send a token as 'Authorization: Bearer <token>'.", code="missing_token"
        )
    return authenticate_token(token)
