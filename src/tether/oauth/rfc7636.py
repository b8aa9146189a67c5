"""The authorization request with PKCE (RFC 7636, method S256), ``state`` and SMART's ``aud``.

Authlib computes the S256 challenge; this module picks the verifier and the state.
"""

from __future__ import annotations

from dataclasses import dataclass

from authlib.common.security import generate_token

from tether.oauth.rfc6749 import OAuth2Client
from tether.oauth.smart_discovery import SmartConfiguration


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str


def authorization_request(
    client: OAuth2Client, config: SmartConfiguration, *, aud: str
) -> AuthorizationRequest:
    """The authorize URL with a fresh state and PKCE verifier (RFC 7636 §4.1: 43-128 chars)."""
    verifier = generate_token(64)
    state = generate_token(43)
    url, _ = client.create_authorization_url(
        config.authorization_endpoint, state=state, code_verifier=verifier, aud=aud
    )
    return AuthorizationRequest(url=url, state=state, code_verifier=verifier)
