"""OAuth 2.0 Token Introspection (RFC 7662), where the source advertises an endpoint: when
tether's grant ends (the refresh token's ``exp``), for sources whose token responses do not
say (no ``refresh_token_expires_in``)."""

from __future__ import annotations

import time

import httpx
from authlib.integrations.base_client.errors import OAuthError

from tether.oauth.rfc6749 import OAuth2Client
from tether.oauth.smart_discovery import SmartConfiguration


def refresh_token_lifetime(
    client: OAuth2Client, config: SmartConfiguration, *, refresh_token: str
) -> int | None:
    """Seconds until the refresh token expires, by introspection; None when the source has no
    endpoint, refuses, or does not say (introspection is often only for resource servers)."""
    if not config.introspection_endpoint:
        return None
    try:
        response = client.introspect_token(
            config.introspection_endpoint,
            token=refresh_token,
            token_type_hint="refresh_token",  # noqa: S106 (a hint, not a secret)
        )
        answer = response.json() if response.status_code == 200 else None
    except (OAuthError, httpx.HTTPError, ValueError):
        return None
    if not isinstance(answer, dict) or answer.get("active") is not True:
        return None
    exp = answer.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return max(0, int(exp - time.time()))
