"""The one way to turn a bearer credential into a principal.

REST, GraphQL, the member page and the SDK's getToken all call :func:`authenticate` (an API key
or a member token) or :func:`authenticate_member` (a member token only); the adapters never
verify a credential themselves.
"""

from __future__ import annotations

from tether.errors import AuthenticationRequired
from tether.identity.api_keys import looks_like_api_key, verify_api_key
from tether.identity.member_tokens import verify_member_token
from tether.identity.principals import MemberPrincipal, Principal, member_only
from tether.runtime import Runtime

BEARER_HINT = "send a member token or API key as 'Authorization: Bearer …'"


def bearer_credential(authorization: str | None) -> str:
    """The credential of an ``Authorization: Bearer …`` header value, or 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired(BEARER_HINT)
    return token.strip()


def authenticate(runtime: Runtime, credential: str) -> Principal:
    """The tenant behind an API key, or the member behind a member token (401 otherwise)."""
    with runtime.db.read() as session:
        if looks_like_api_key(credential):
            return verify_api_key(session, token=credential, pepper=runtime.secret_key)
        return verify_member_token(session, token=credential, secret_key=runtime.secret_key)


def authenticate_member(runtime: Runtime, credential: str) -> MemberPrincipal:
    """The member behind a member token: 401 for a bad credential, 403 for an API key."""
    return member_only(authenticate(runtime, credential))
