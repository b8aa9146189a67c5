"""JWT client assertions (RFC 7523 §2.2) as SMART App Launch 2.x's asymmetric client
authentication ("client-confidential-asymmetric", ``private_key_jwt``).

Authlib builds and signs the assertion (:class:`authlib.oauth2.rfc7523.PrivateKeyJWT`); this
module fixes what SMART requires of it: ``iss`` = ``sub`` = the client id, ``aud`` = the token
endpoint URL (for revocation too), ``exp`` no more than five minutes ahead, a fresh ``jti`` for
every request and the key's ``kid`` in the header. Only ``RS384`` and ``ES384`` are offered
(the two SMART servers must support). The key material is a :class:`ClientAssertionKey`
handed in by the caller; this module stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from joserfc.jwk import ECKey, RSAKey

__all__ = [
    "ALGORITHMS",
    "ASSERTION_LIFETIME_SECONDS",
    "METHOD",
    "ClientAssertionKey",
    "SmartPrivateKeyJWT",
    "generate_key",
]

METHOD = "private_key_jwt"
ALGORITHMS = ("RS384", "ES384")
ASSERTION_LIFETIME_SECONDS = 300  # SMART: exp "no more than five minutes in the future"
RSA_KEY_BITS = 2048
EC_CURVE = "P-384"  # ES384 is ECDSA over P-384 (RFC 7518 §3.4)


@dataclass(frozen=True)
class ClientAssertionKey:
    """A private signing key with its ``kid`` and algorithm; prints without the key."""

    kid: str
    alg: str
    private_pem: str = field(repr=False)

    def jose_key(self) -> RSAKey | ECKey:
        if self.alg == "ES384":
            return ECKey.import_key(self.private_pem)
        return RSAKey.import_key(self.private_pem)


def generate_key(alg: str) -> tuple[str, str, dict[str, Any]]:
    """A fresh key pair for ``alg``: ``(kid, private PEM, public JWK)``; the kid is the key's
    RFC 7638 thumbprint, and the public JWK carries ``kid``, ``alg`` and ``use: sig``."""
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {ALGORITHMS}")
    key: RSAKey | ECKey = (
        ECKey.generate_key(EC_CURVE, private=True)
        if alg == "ES384"
        else RSAKey.generate_key(RSA_KEY_BITS, private=True)
    )
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    pem = key.as_pem(private=True)
    return kid, pem.decode() if isinstance(pem, bytes) else str(pem), public


class SmartPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's ``private_key_jwt`` with SMART's claims; register it on an OAuth2Client.

    ``token_endpoint`` is always the ``aud``, also when the request goes to the revocation
    endpoint. Every call signs a new assertion (new ``jti``, ``iat`` now).
    """

    def __init__(self, key: ClientAssertionKey, *, token_endpoint: str) -> None:
        super().__init__(token_endpoint=token_endpoint, alg=key.alg)
        self._key = key

    def sign(self, auth: Any, token_endpoint: str) -> str:
        assertion: str = private_key_jwt_sign(
            self._key.jose_key(),
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self._key.alg,
            claims={"jti": generate_token(36)},
            header={"kid": self._key.kid},
            expires_in=ASSERTION_LIFETIME_SECONDS,
        )
        return assertion
