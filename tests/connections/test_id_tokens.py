"""The token response's id_token, checked as OpenID Connect says, against keys served over
HTTP by an issuer that is not tether's code (PyJWT signs here; tether verifies with joserfc),
and bad input: claims that do not fit, someone else's key, a malformed key set."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tether.oauth import oidc
from tether.oauth.smart_discovery import SmartConfiguration
from tether.testing.live_server import serve

CLIENT = "tether"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    public = key.public_key()
    algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
    doc: dict[str, Any] = json.loads(algorithm.to_jwk(public))
    return {**doc, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """/good/jwks: an RSA and an EC key; /bad/jwks: not a key set; /gone/jwks: 404."""

    async def good(request: Request) -> JSONResponse:
        return JSONResponse(
            {"keys": [_jwk(RSA_KEY, "rsa-1", "RS384"), _jwk(EC_KEY, "ec-1", "ES384")]}
        )

    async def bad(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [{"kty": "RSA", "n": "not base64!"}]})

    async def gone(request: Request) -> Response:
        return Response("no", 404)

    app = Starlette(
        routes=[
            Route("/good/jwks", good),
            Route("/bad/jwks", bad),
            Route("/gone/jwks", gone),
        ]
    )
    with serve(app) as live:
        yield live.url


def _config(issuer: str, where: str = "good") -> SmartConfiguration:
    return SmartConfiguration(
        authorization_endpoint=f"{issuer}/authorize",
        token_endpoint=f"{issuer}/token",
        revocation_endpoint=None,
        code_challenge_methods=("S256",),
        capabilities=(),
        issuer=issuer,
        jwks_uri=f"{issuer}/{where}/jwks",
    )


def _token(
    issuer: str, *, key: Any = RSA_KEY, kid: str = "rsa-1", alg: str = "RS384", **claims: Any
) -> str:
    now = int(time.time())
    body = {
        "iss": issuer,
        "sub": "patient-1",
        "aud": CLIENT,
        "iat": now,
        "exp": now + 300,
        "fhirUser": f"{issuer}/fhir/Patient/patient-1",
        **claims,
    }
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers={"kid": kid}
    )


def _check(issuer: str, token: str, where: str = "good") -> dict[str, Any] | None:
    oidc._cache.clear()
    with httpx.Client() as http:
        return oidc.check_id_token(http, token, config=_config(issuer, where), client_id=CLIENT)


def test_a_good_id_token_gives_its_claims(issuer: str) -> None:
    claims = _check(issuer, _token(issuer))
    assert claims is not None and claims["fhirUser"].endswith("/Patient/patient-1")
    ec_claims = _check(issuer, _token(issuer, key=EC_KEY, kid="ec-1", alg="ES384"))
    assert ec_claims is not None and ec_claims["sub"] == "patient-1"
    # aud may be a list that holds tether's client id.
    assert _check(issuer, _token(issuer, aud=[CLIENT, "another"])) is not None


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "https://impostor.example"}, "iss"),
        ({"exp": int(time.time()) - 3600}, "exp"),
        ({"sub": None}, "sub"),
    ],
)
def test_claims_that_do_not_fit_are_refused(issuer: str, claims: dict[str, Any], why: str) -> None:
    with pytest.raises(oidc.IdTokenRefused) as caught:
        _check(issuer, _token(issuer, **claims))
    assert why in str(caught.value)


def test_a_token_signed_by_someone_else_is_refused(issuer: str) -> None:
    with pytest.raises(oidc.IdTokenRefused, match="signature"):
        _check(issuer, _token(issuer, key=OTHER_KEY))
    with pytest.raises(oidc.IdTokenRefused, match="signature"):
        _check(issuer, _token(issuer, key=OTHER_KEY, kid="unknown"))
    # HS256 with the public key as the secret (the classic confusion) is not accepted.
    with pytest.raises(oidc.IdTokenRefused, match="signature"):
        _check(
            issuer,
            jwt.encode({"sub": "x"}, "secret-bytes-long-enough-32-chars!", algorithm="HS256"),
        )


def test_a_malformed_or_missing_key_set_is_refused(issuer: str) -> None:
    with pytest.raises(oidc.IdTokenRefused, match="not a JWK Set"):
        _check(issuer, _token(issuer), where="bad")
    with pytest.raises(oidc.IdTokenRefused, match="HTTP 404"):
        _check(issuer, _token(issuer), where="gone")


def test_a_source_without_keys_is_not_checked(issuer: str) -> None:
    config = _config(issuer)
    unpublished = SmartConfiguration(**{**config.__dict__, "jwks_uri": None})
    with httpx.Client() as http:
        assert (
            oidc.check_id_token(http, _token(issuer), config=unpublished, client_id=CLIENT) is None
        )
