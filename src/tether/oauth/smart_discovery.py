"""SMART App Launch discovery: where a source's authorization server is, and what it offers.

- SMART App Launch 2.x (§2.3): ``{fhir base}/.well-known/smart-configuration``;
- SMART App Launch 1.0 servers that lack it (or serve something unusable there): the
  ``oauth-uris`` extension of the CapabilityStatement at ``{fhir base}/metadata``
  (``rest.security.extension``: ``authorize``, ``token``, ``revoke``).

The result is cached per FHIR base URL for :data:`DISCOVERY_TTL_SECONDS`. A source that cannot
be discovered either way raises :class:`~tether.errors.SourceUnavailable` naming both URLs it
tried; one that advertises PKCE methods without ``S256`` raises
:class:`~tether.errors.SourceIncompatible`, and so does :func:`require_client_auth` when the
source lists its token endpoint's authentication methods and the chosen one is not among them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tether.errors import SourceIncompatible, SourceUnavailable

DISCOVERY_TTL_SECONDS = 300
DISCOVERY_PATH = "/.well-known/smart-configuration"
METADATA_PATH = "/metadata"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None
    code_challenge_methods: tuple[str, ...]
    capabilities: tuple[str, ...]
    # Empty when the source does not list them (SMART v1's CapabilityStatement never does).
    token_endpoint_auth_methods: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    discovered_at: str = ""  # the URL the configuration was read from
    issuer: str | None = None  # what an id_token's ``iss`` must be (OpenID Connect)
    jwks_uri: str | None = None  # the keys the source signs id_tokens with
    introspection_endpoint: str | None = None  # RFC 7662, where the source offers it


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

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _NotHere(Exception):
    """One discovery document could not be used; ``reason`` says why (no secrets in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def discover(http: httpx.Client, fhir_base_url: str) -> SmartConfiguration:
    """The source's SMART configuration: ``.well-known`` first, then ``metadata`` (SMART v1)."""
    well_known = fhir_base_url + DISCOVERY_PATH
    metadata = fhir_base_url + METADATA_PATH
    try:
        config = _from_well_known(_get_json(http, well_known, "application/json"), well_known)
    except _NotHere as first:
        try:
            config = _from_capability_statement(
                _get_json(http, metadata, "application/fhir+json"), metadata
            )
        except _NotHere as second:
            raise SourceUnavailable(
                f"SMART discovery failed: {well_known} ({first.reason}) and "
                f"{metadata} ({second.reason})"
            ) from None
    if config.code_challenge_methods and "S256" not in config.code_challenge_methods:
        raise SourceIncompatible(
            f"the source does not support PKCE S256 (code_challenge_methods_supported at "
            f"{config.discovered_at}: {', '.join(config.code_challenge_methods)})"
        )
    return config


def require_client_auth(config: SmartConfiguration, method: str) -> None:
    """The chosen token endpoint authentication must be one the source lists, if it lists any."""
    if config.token_endpoint_auth_methods and method not in config.token_endpoint_auth_methods:
        raise SourceIncompatible(
            f"the directory says {method} but the source offers "
            f"{', '.join(config.token_endpoint_auth_methods)} "
            f"(token_endpoint_auth_methods_supported at {config.discovered_at})"
        )


def _get_json(http: httpx.Client, url: str, accept: str) -> Any:
    try:
        response = http.get(url, headers={"Accept": accept})
    except httpx.HTTPError as exc:
        raise _NotHere(type(exc).__name__) from None
    if response.status_code != 200:
        raise _NotHere(f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise _NotHere("not JSON") from None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None


def _from_well_known(doc: Any, url: str) -> SmartConfiguration:
    if not isinstance(doc, dict):
        raise _NotHere("not a JSON object")
    authorize, token = _url(doc.get("authorization_endpoint")), _url(doc.get("token_endpoint"))
    if authorize is None or token is None:
        missing = "authorization_endpoint" if authorize is None else "token_endpoint"
        raise _NotHere(f"no usable {missing}")
    return SmartConfiguration(
        authorization_endpoint=authorize,
        token_endpoint=token,
        revocation_endpoint=_url(doc.get("revocation_endpoint")),
        code_challenge_methods=_strings(doc.get("code_challenge_methods_supported")),
        capabilities=_strings(doc.get("capabilities")),
        token_endpoint_auth_methods=_strings(doc.get("token_endpoint_auth_methods_supported")),
        scopes_supported=_strings(doc.get("scopes_supported")),
        discovered_at=url,
        issuer=doc.get("issuer") if isinstance(doc.get("issuer"), str) else None,
        jwks_uri=_url(doc.get("jwks_uri")),
        introspection_endpoint=_url(doc.get("introspection_endpoint")),
    )


def _from_capability_statement(doc: Any, url: str) -> SmartConfiguration:
    """SMART App Launch 1.0 §"Declaring support for OAuth2 endpoints": the ``oauth-uris``
    extension in ``CapabilityStatement.rest.security``."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "CapabilityStatement":
        raise _NotHere("not a CapabilityStatement")
    uris: dict[str, str] = {}
    for rest in doc.get("rest") or []:
        security = rest.get("security") if isinstance(rest, dict) else None
        for ext in (security or {}).get("extension") or []:
            if not isinstance(ext, dict) or ext.get("url") != OAUTH_URIS:
                continue
            for sub in ext.get("extension") or []:
                if isinstance(sub, dict) and isinstance(sub.get("url"), str):
                    value = _url(sub.get("valueUri"))
                    if value is not None:
                        uris.setdefault(sub["url"], value)
    if "authorize" not in uris or "token" not in uris:
        raise _NotHere("no oauth-uris extension with authorize and token")
    return SmartConfiguration(
        authorization_endpoint=uris["authorize"],
        token_endpoint=uris["token"],
        revocation_endpoint=uris.get("revoke"),
        introspection_endpoint=uris.get("introspect"),
        code_challenge_methods=(),
        capabilities=(),
        discovered_at=url,
    )
