"""The sandbox's id_tokens, verified by PyJWT (not the sandbox's JOSE library) against the key
set its SMART configuration names."""

from __future__ import annotations

import httpx
import jwt

from tests.sandbox.conftest import CALLBACK, Live, authorize_url, pkce
from tether.sandbox.testing import complete_consent


def test_the_sandbox_id_token_verifies_with_pyjwt(live: Live) -> None:
    verifier, challenge = pkce()
    location = complete_consent(live.http, authorize_url(live, challenge=challenge))
    code = httpx.URL(location).params["code"]
    token = live.http.post(
        f"{live.base()}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
        auth=("tether", "sandbox-secret"),
    ).json()
    configuration = live.http.get(f"{live.fhir()}/.well-known/smart-configuration").json()
    keys = jwt.PyJWKClient(configuration["jwks_uri"])
    claims = jwt.decode(
        token["id_token"],
        keys.get_signing_key_from_jwt(token["id_token"]).key,
        algorithms=["RS256"],
        audience="tether",
        issuer=configuration["issuer"],
    )
    assert claims["fhirUser"] == f"{live.fhir()}/Patient/{token['patient']}"
    assert token["need_patient_banner"] is False
