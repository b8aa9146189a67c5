"""The authorization request with PKCE (RFC 7636, method S256), ``state`` and SMART's ``aud``.

Authlib computes the S256 challenge; this module picks the verifier and the state.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    client: OAuth2Client,
    config: SmartConfiguration,
    *,
    aud: str | None,
    scope: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> AuthorizationRequest:
    """The authorize URL with a fresh state and PKCE verifier (RFC 7636 §4.1: 43-128 chars);
    ``aud`` is left out for a source that refuses it, ``scope`` replaces the client's, and
    ``extra`` adds the parameters a source's profile asks for."""
    verifier = generate_token(64)
    state = generate_token(43)
    params: dict[str, str] = dict(extra or {})
    if aud is not None:
        params["aud"] = aud
    if scope is not None:
        params["scope"] = scope
    url, _ = client.create_authorization_url(
        config.authorization_endpoint, state=state, code_verifier=verifier, **params
    )
    return AuthorizationRequest(url=url, state=state, code_verifier=verifier)
