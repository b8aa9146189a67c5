"""SMART App Launch 2.x standalone patient launch, as a client, on Authlib.

Only the SMART glue lives here; the protocol work is Authlib's:

- discovery: ``{fhir base}/.well-known/smart-configuration`` (SMART App Launch 2.x §2.3),
  cached per base URL with a TTL;
- authorization request with PKCE S256 (RFC 7636), an unguessable ``state`` and ``aud``;
- code exchange and refresh (RFC 6749 §4.1.3, §6), with the client authentication the source's
  settings name (``client_secret_basic``, ``client_secret_post`` or ``none``);
- revocation (RFC 7009), where the source advertises an endpoint.

Errors are translated in one place (:func:`_translate`) into :class:`OAuthProtocolError`
(the source said no: ``invalid_grant`` and friends) or :class:`SourceUnavailable` (network, 5xx,
garbage), so callers can tell "the grant is dead" from "try again later".
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError

with warnings.catch_warnings():
    # Authlib announces a move to "httpx2"; httpx is what it supports and what we use.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

from tether.errors import TetherError

DISCOVERY_TTL_SECONDS = 300
DISCOVERY_PATH = "/.well-known/smart-configuration"


class SmartError(TetherError):
    """Base of the errors raised while talking to a source's authorization server."""


class OAuthProtocolError(SmartError):
    """The authorization server refused (``error`` holds the RFC 6749 error code)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description or ''}".rstrip(": "))
        self.error = error
        self.description = description


class SourceUnavailable(SmartError):
    """The source could not be reached or answered garbage; retrying later may work."""


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None
    code_challenge_methods: tuple[str, ...]
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class ClientSettings:
    """How tether authenticates to one source (from the directory entry)."""

    client_id: str
    client_secret: str | None
    token_endpoint_auth_method: str
    scopes: str


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_in: int | None
    scope: str | None
    patient: str | None
    token_type: str

    @classmethod
    def from_response(cls, token: dict[str, Any]) -> TokenSet:
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise SourceUnavailable("token response without access_token")
        expires = token.get("expires_in")
        return cls(
            access_token=access,
            refresh_token=token.get("refresh_token") or None,
            expires_in=int(expires)
            if isinstance(expires, int | float | str) and str(expires).isdigit()
            else None,
            scope=token.get("scope"),
            patient=token.get("patient"),
            token_type=str(token.get("token_type", "")),
        )


class DiscoveryCache:
    """SMART configuration per FHIR base URL, fetched at most once per TTL."""

    def __init__(
        self, ttl: float = DISCOVERY_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, SmartConfiguration]] = {}
        self._lock = threading.Lock()

    def get(self, http: httpx.Client, fhir_base_url: str) -> SmartConfiguration:
        now = self._clock()
        with self._lock:
            hit = self._entries.get(fhir_base_url)
            if hit and now - hit[0] < self._ttl:
                return hit[1]
        config = discover(http, fhir_base_url)
        with self._lock:
            self._entries[fhir_base_url] = (now, config)
        return config


def discover(http: httpx.Client, fhir_base_url: str) -> SmartConfiguration:
    """Fetch and check ``.well-known/smart-configuration`` (SMART App Launch 2.x §2.3)."""
    try:
        response = http.get(fhir_base_url + DISCOVERY_PATH, headers={"Accept": "application/json"})
        response.raise_for_status()
        doc = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SourceUnavailable(f"SMART discovery failed: {type(exc).__name__}") from exc
    if not isinstance(doc, dict):
        raise SourceUnavailable("SMART discovery: not a JSON object")
    try:
        config = SmartConfiguration(
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            revocation_endpoint=doc.get("revocation_endpoint"),
            code_challenge_methods=tuple(doc.get("code_challenge_methods_supported") or ()),
            capabilities=tuple(doc.get("capabilities") or ()),
        )
    except KeyError as exc:
        raise SourceUnavailable(f"SMART discovery: missing {exc.args[0]}") from exc
    if config.code_challenge_methods and "S256" not in config.code_challenge_methods:
        raise SourceUnavailable("the source does not support PKCE S256")
    return config


@contextmanager
def oauth_client(
    settings: ClientSettings,
    *,
    redirect_uri: str,
    transport: httpx.BaseTransport | None,
    timeout: httpx.Timeout,
) -> Iterator[OAuth2Client]:
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
    try:
        yield client
    finally:
        client.close()


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
