"""OAuth 2.0 (RFC 6749) as a client, on Authlib's httpx client: the token endpoint.

- the authorization-code exchange (§4.1.3, with the PKCE verifier of RFC 7636),
- refresh (§6), keeping the old refresh token when the source does not rotate it,
- the resource-owner password grant (§4.3), for BASIC sources that use it,

with the client authentication the source's settings name (``client_secret_basic``,
``client_secret_post``, ``none``, or ``private_key_jwt`` with a JWT client assertion signed
by one of tether's keys, :mod:`tether.oauth.rfc7523`). Errors are translated in one place
(:func:`_translate`) into :class:`~tether.errors.OAuthProtocolError` (the source said no:
``invalid_grant`` and friends) or :class:`~tether.errors.SourceUnavailable` (network, 5xx,
garbage), so callers can tell "the grant is dead" from "try again later".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.base_client.errors import OAuthError

with warnings.catch_warnings():
    # Authlib announces a move to "httpx2"; httpx is what it supports and what we use.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

from tether.errors import OAuthProtocolError, SourceUnavailable
from tether.oauth import rfc7523
from tether.oauth.smart_discovery import SmartConfiguration

__all__ = [
    "ClientSettings",
    "OAuth2Client",
    "TokenSet",
    "exchange_code",
    "oauth_client",
    "password_grant",
    "refresh",
]


@dataclass(frozen=True)
class ClientSettings:
    """How tether authenticates to one source (from the directory entry)."""

    client_id: str
    client_secret: str | None
    token_endpoint_auth_method: str
    scopes: str
    # private_key_jwt: the key tether signs its client assertions with.
    assertion_key: rfc7523.ClientAssertionKey | None = None


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_in: int | None
    scope: str | None
    patient: str | None
    token_type: str
    # When the grant itself ends (seconds), where the source says (a common extension).
    refresh_token_expires_in: int | None = None
    id_token: str | None = None  # OpenID Connect, when ``openid`` was granted
    # Anything else in the response (``need_patient_banner``, ``smart_style_url``,
    # ``encounter``...) is ignored: tether has no EHR frame to draw a banner in.

    @classmethod
    def from_response(cls, token: dict[str, Any]) -> TokenSet:
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise SourceUnavailable("token response without access_token")
        scope, patient, id_token = token.get("scope"), token.get("patient"), token.get("id_token")
        return cls(
            access_token=access,
            refresh_token=token.get("refresh_token") or None,
            expires_in=_seconds(token.get("expires_in")),
            scope=scope if isinstance(scope, str) else None,
            patient=patient if isinstance(patient, str) else None,
            token_type=str(token.get("token_type", "")),
            refresh_token_expires_in=_seconds(token.get("refresh_token_expires_in")),
            id_token=id_token if isinstance(id_token, str) and id_token else None,
        )


def _seconds(value: Any) -> int | None:
    """A count of seconds as JSON numbers or digit strings come; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


@contextmanager
def oauth_client(
    settings: ClientSettings,
    *,
    redirect_uri: str,
    token_endpoint: str,
    transport: httpx.BaseTransport | None,
    timeout: httpx.Timeout,
) -> Iterator[OAuth2Client]:
    """An Authlib client authenticating as ``settings`` say; with ``private_key_jwt`` every
    token and revocation request carries a fresh assertion whose ``aud`` is
    ``token_endpoint``."""
    client = OAuth2Client(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        token_endpoint_auth_method=settings.token_endpoint_auth_method,
        revocation_endpoint_auth_method=settings.token_endpoint_auth_method,
        scope=settings.scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        transport=transport,
        timeout=timeout,
    )
    if settings.token_endpoint_auth_method == rfc7523.METHOD:
        if settings.assertion_key is None:
            raise ValueError("private_key_jwt needs an assertion key")
        client.register_client_auth_method(
            rfc7523.SmartPrivateKeyJWT(settings.assertion_key, token_endpoint=token_endpoint)
        )
    try:
        yield client
    finally:
        client.close()


def _translate(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return call()
    except OAuthError as exc:
        error = getattr(exc, "error", None) or "oauth_error"
        raise OAuthProtocolError(str(error), getattr(exc, "description", None)) from None
    except httpx.HTTPError as exc:
        raise SourceUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from None
    except ValueError as exc:
        raise SourceUnavailable("token endpoint answered something that is not JSON") from exc


def exchange_code(
    client: OAuth2Client, config: SmartConfiguration, *, code: str, code_verifier: str
) -> TokenSet:
    token = _translate(
        lambda: client.fetch_token(
            config.token_endpoint,
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
        )
    )
    return TokenSet.from_response(token)


def refresh(client: OAuth2Client, config: SmartConfiguration, *, refresh_token: str) -> TokenSet:
    token = _translate(lambda: client.refresh_token(config.token_endpoint, refresh_token))
    return TokenSet.from_response(token)


def password_grant(
    client: OAuth2Client, config: SmartConfiguration, *, username: str, password: str
) -> TokenSet:
    """The resource-owner password grant (RFC 6749 §4.3), for BASIC sources that use it."""
    token = _translate(
        lambda: client.fetch_token(
            config.token_endpoint, grant_type="password", username=username, password=password
        )
    )
    return TokenSet.from_response(token)
