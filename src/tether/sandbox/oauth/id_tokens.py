"""OpenID Connect id_tokens at the sandbox (SMART App Launch 2.x "sso-openid-connect").

When ``openid`` is granted, the token response carries an ``id_token``: a JWT signed
``RS256`` by the sandbox's own key, published at ``{issuer}/oauth/jwks`` (the
``jwks_uri`` of the SMART configuration), with ``iss`` = the source's issuer, ``sub`` = the
patient, ``aud`` = the client id, ``iat``/``exp``, and SMART's ``fhirUser`` (the Patient's
absolute URL). The ``forge_id_token`` knob signs it with a key that is published nowhere,
under the same ``kid``: what a client must refuse.
"""

from __future__ import annotations

import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

ALG = "RS256"
LIFETIME = 3600


class IdTokenSigner:
    """The sandbox's id_token key (made at start-up, one for every source)."""

    def __init__(self) -> None:
        self._key = RSAKey.generate_key(2048, parameters={"kid": "sandbox-id-1", "use": "sig"})

    def jwks(self) -> dict[str, Any]:
        doc: dict[str, Any] = dict(KeySet([self._key]).as_dict(private=False))
        for key in doc["keys"]:
            key["alg"] = ALG
        return doc

    def sign(
        self, *, issuer: str, patient: str, client_id: str, fhir_base: str, forged: bool = False
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": patient,
            "aud": client_id,
            "iat": now,
            "exp": now + LIFETIME,
            "fhirUser": f"{fhir_base}/Patient/{patient}",
        }
        key = self._key
        if forged:  # someone else's key, claiming to be ours
            key = RSAKey.generate_key(2048, parameters={"kid": str(self._key.kid)})
        return jwt.encode({"alg": ALG, "kid": str(self._key.kid)}, claims, key)
