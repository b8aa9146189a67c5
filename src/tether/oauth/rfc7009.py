"""OAuth 2.0 Token Revocation (RFC 7009), where the source advertises an endpoint."""

from __future__ import annotations

import httpx
from authlib.integrations.base_client.errors import OAuthError

from tether.oauth.rfc6749 import OAuth2Client
from tether.oauth.smart_discovery import SmartConfiguration


def revoke(client: OAuth2Client, config: SmartConfiguration, *, token: str, hint: str) -> bool:
    """RFC 7009 revocation; False when the source advertises no endpoint or refuses."""
    if not config.revocation_endpoint:
        return False
    try:
        response = client.revoke_token(
            config.revocation_endpoint, token=token, token_type_hint=hint
        )
    except (OAuthError, httpx.HTTPError):
        return False
    return bool(response.status_code == 200)
