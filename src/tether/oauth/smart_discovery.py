"""SMART App Launch 2.x discovery: ``{fhir base}/.well-known/smart-configuration`` (§2.3).

The configuration is fetched with the caller's httpx client and cached per FHIR base URL for
:data:`DISCOVERY_TTL_SECONDS`. A source that cannot be discovered, or that does not offer PKCE
S256, raises :class:`~tether.errors.SourceUnavailable`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tether.errors import SourceUnavailable

DISCOVERY_TTL_SECONDS = 300
DISCOVERY_PATH = "/.well-known/smart-configuration"


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None
    code_challenge_methods: tuple[str, ...]
    capabilities: tuple[str, ...]


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
