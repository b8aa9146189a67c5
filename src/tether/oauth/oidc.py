"""The ``id_token`` of a SMART token response (OpenID Connect Core §3.1.3.7, as SMART App
Launch 2.x "sso-openid-connect" uses it).

When a source returns an ``id_token`` and its SMART configuration names a ``jwks_uri``,
:func:`check_id_token` verifies it before anything of the response is stored: the signature
by a key of that set (``RS256``, ``RS384``, ``ES256`` or ``ES384``), ``iss`` equal to the
configuration's ``issuer`` when it names one, ``aud`` containing tether's client id, and
``exp`` in the future. A token that fails is :class:`IdTokenRefused`: the whole response is
refused (a source whose id_token someone else signed is not the source tether asked). A source
without a ``jwks_uri`` (SMART v1 servers) cannot be checked: its id_token is not used.
The key set is fetched from the source's own ``jwks_uri`` only, and cached per URL.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tether.errors import SourceUnavailable
from tether.oauth.smart_discovery import SmartConfiguration

ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
JWKS_TTL = 300.0
LEEWAY = 60  # seconds of clock skew allowed on exp and iat


class IdTokenRefused(Exception):
    """The id_token is not the source's (the reason names the check, never the token)."""


_cache: dict[str, tuple[float, KeySet]] = {}
_lock = threading.Lock()


def _key_set(http: httpx.Client, url: str, *, refetch: bool) -> tuple[KeySet, bool]:
    """The key set at ``url`` and whether it was fetched just now (else: from the cache)."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(url)
    if hit and not refetch and now - hit[0] < JWKS_TTL:
        return hit[1], False
    try:
        response = http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise SourceUnavailable(f"the source's JWKS is unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise IdTokenRefused(f"the source's JWKS answered HTTP {response.status_code}")
    try:
        keys = KeySet.import_key_set(response.json())
    except (ValueError, JoseError, TypeError, KeyError, AttributeError):
        raise IdTokenRefused("the source's JWKS is not a JWK Set") from None
    with _lock:
        _cache[url] = (now, keys)
    return keys, True


def check_id_token(
    http: httpx.Client, id_token: str, *, config: SmartConfiguration, client_id: str
) -> dict[str, Any] | None:
    """The id_token's claims once verified; None when the source publishes no keys (it cannot
    be checked, so it is not used). Raises :class:`IdTokenRefused`."""
    if config.jwks_uri is None:
        return None
    keys, fresh = _key_set(http, config.jwks_uri, refetch=False)
    try:
        token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError) as exc:
        if fresh:  # the set was fetched just now: fetching it again cannot help
            raise IdTokenRefused(f"id_token signature: {type(exc).__name__}") from None
        # From the cache: the source may have rotated its keys since. Once more, fetched.
        keys, _ = _key_set(http, config.jwks_uri, refetch=True)
        try:
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError) as again:
            raise IdTokenRefused(f"id_token signature: {type(again).__name__}") from None
    expected: dict[str, Any] = {
        "aud": {"essential": True, "value": client_id},
        "exp": {"essential": True},
        "sub": {"essential": True},
    }
    if config.issuer:
        expected["iss"] = {"essential": True, "value": config.issuer}
    try:
        JWTClaimsRegistry(leeway=LEEWAY, **expected).validate(token.claims)
    except JoseError as exc:
        raise IdTokenRefused(f"id_token claims: {exc}") from None
    return dict(token.claims)
