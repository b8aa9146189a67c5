"""``private_key_jwt`` at the sandbox: JWT client assertions (RFC 7523 §2.2, §3) verified the
way SMART App Launch 2.x ("client-confidential-asymmetric") asks of a server.

A client registered with a ``jwks_uri`` (RFC 7591 client metadata) proves itself with an
assertion signed by one of the keys published there. The sandbox fetches that JWK Set over
HTTP (asynchronously, before Authlib's synchronous server runs: :meth:`JwksCache.prepare`),
again when the assertion names a ``kid`` it has not seen, and checks the signature (``RS384``
or ``ES384`` only), ``iss`` = ``sub`` = the client id, ``aud`` = the source's token endpoint,
``exp`` at most five minutes ahead, and a ``jti`` never seen before. Any failure answers
``invalid_client``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tether.sandbox.oauth.models import SandboxClient

ALGORITHMS = ["RS384", "ES384"]
MAX_LIFETIME = 300  # seconds: SMART's "exp no more than five minutes in the future"
LEEWAY = 30  # seconds of clock skew allowed on exp
JWKS_TTL = 60.0  # seconds a fetched JWK Set is trusted for known kids
JWKS_TIMEOUT = 5.0


class JwksCache:
    """Client JWK Sets by URL, fetched over HTTP (never inside Authlib's synchronous code)."""

    def __init__(self, ttl: float = JWKS_TTL) -> None:
        self._ttl = ttl
        self._sets: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._sets.get(url)
        return hit[1] if hit else None

    async def prepare(self, form: dict[str, str], query: Callable[[str], Any]) -> None:
        """Before a token or revocation request: fetch the JWKS its assertion will need."""
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            return
        try:
            compact = jws.extract_compact(form["client_assertion"].encode())
            kid = compact.headers().get("kid")
            sub = json.loads(compact.payload).get("sub")
        except (JoseError, ValueError, AttributeError):
            return  # Authlib refuses it in a moment
        client = query(sub) if isinstance(sub, str) else None
        url = client.config.jwks_uri if isinstance(client, SandboxClient) else None
        if not url:
            return
        with self._lock:
            hit = self._sets.get(url)
        if hit and time.monotonic() - hit[0] < self._ttl and kid in _kids(hit[1]):
            return
        try:
            async with httpx.AsyncClient(timeout=JWKS_TIMEOUT) as http:
                response = await http.get(url, headers={"Accept": "application/json"})
            doc = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("keys"), list):
            with self._lock:
                self._sets[url] = (time.monotonic(), doc)


def _kids(doc: dict[str, Any]) -> set[Any]:
    return {k.get("kid") for k in doc.get("keys", []) if isinstance(k, dict)}


class SeenJtis:
    """``jti`` values already used, kept until their assertion expires (replay refused)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, key: str, exp: float) -> bool:
        now = time.time()
        with self._lock:
            for old in [k for k, until in self._seen.items() if until + LEEWAY < now]:
                del self._seen[old]
            if key in self._seen:
                return False
            self._seen[key] = exp
            return True


class PrivateKeyJWTAssertion(JWTBearerClientAssertion):
    """Authlib's RFC 7523 client authentication with SMART's rules, at one source."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(
        self, *, token_endpoint: Callable[[], str], jwks: JwksCache, seen: SeenJtis
    ) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY)
        self._token_endpoint = token_endpoint
        self._jwks = jwks
        self._seen = seen

    def get_audiences(self) -> list[str]:
        return [self._token_endpoint()]

    def resolve_client_public_key(self, client: SandboxClient) -> KeySet:
        url = client.config.jwks_uri
        doc = self._jwks.get(url) if url else None
        if doc is None:
            raise InvalidClientError(description="the client's JWK Set could not be fetched")
        try:
            return KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description="the client's JWK Set is malformed") from exc

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description or exc.error) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidClientError(description="the assertion cannot be verified") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp > time.time() + MAX_LIFETIME + LEEWAY:
            raise InvalidClientError(description="exp is more than five minutes ahead")
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        exp = claims.get("exp")
        return self._seen.first_use(
            f"{claims['sub']}:{jti}", float(exp) if isinstance(exp, int | float) else time.time()
        )
