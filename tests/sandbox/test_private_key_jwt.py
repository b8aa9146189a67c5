"""A sandbox source that requires private_key_jwt (RFC 7523) and a SMART v1 source.

The client's assertions here are signed with PyJWT, independently of tether and Authlib; the
sandbox fetches the client's JWK Set over HTTP from a URL on the same loopback server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tests.sandbox.conftest import CALLBACK, pkce, query_of
from tether.sandbox import Sandbox, SandboxConfig, create_sandbox_app
from tether.sandbox.config import default_clients
from tether.sandbox.testing import complete_consent
from tether.testing.live_server import free_port, serve

SPECIALTY, LEGACY = "sandbox-specialty", "sandbox-legacy"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Keys:
    """The client's key pairs; ``published`` is what its JWKS URL serves."""

    private: dict[str, Any] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)

    def add(self, alg: str, *, publish: bool = True) -> str:
        key: Any = (
            ec.generate_private_key(ec.SECP384R1())
            if alg == "ES384"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        kid = uuid.uuid4().hex
        self.private[kid] = (alg, key)
        if publish:
            public = jwt.algorithms.get_default_algorithms()[alg].to_jwk(
                key.public_key(), as_dict=True
            )
            self.published.append({**public, "kid": kid, "alg": alg, "use": "sig"})
        return kid


@dataclass
class Live:
    url: str
    keys: Keys
    http: httpx.Client
    sandbox: Sandbox  # the conftest's autouse fixture resets its knobs

    def base(self, source: str) -> str:
        return f"{self.url}/sandbox/{source}"

    def token_endpoint(self, source: str = SPECIALTY) -> str:
        return f"{self.base(source)}/oauth/token"

    def assertion(self, kid: str, **claims: Any) -> str:
        alg, key = self.keys.private[kid]
        now = int(time.time())
        payload = {
            "iss": "tether",
            "sub": "tether",
            "aud": self.token_endpoint(),
            "iat": now,
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return jwt.encode(payload, pem, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    keys = Keys()

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": keys.published})

    app = create_sandbox_app(
        SandboxConfig(
            public_url=f"{url}/sandbox",
            redirect_uris=[CALLBACK],
            clients=default_clients(jwks_uri=f"{url}/jwks.json"),
        )
    )
    outer = Starlette(routes=[Route("/jwks.json", jwks), Mount("/sandbox", app)])
    with serve(outer, port=port), httpx.Client(timeout=30) as http:
        yield Live(url=url, keys=keys, http=http, sandbox=app.sandbox)


def _code(live: Live) -> tuple[str, str]:
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": "tether",
        "redirect_uri": CALLBACK,
        "scope": "launch/patient openid fhirUser offline_access patient/*.rs",
        "state": "s1",
        "aud": f"{live.base(SPECIALTY)}/fhir",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    location = complete_consent(
        live.http, f"{live.base(SPECIALTY)}/oauth/authorize?{httpx.QueryParams(params)}"
    )
    return query_of(location)["code"], verifier


def _exchange(live: Live, assertion: str | None, **extra: Any) -> httpx.Response:
    code, verifier = _code(live)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    if assertion is not None:
        data |= {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    return live.http.post(live.token_endpoint(), data=data, **extra)


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_signed_assertion_exchanges_refreshes_and_revokes(live: Live, alg: str) -> None:
    kid = live.keys.add(alg)
    answer = _exchange(live, live.assertion(kid))
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["patient"].startswith("specialty-") and tokens["refresh_token"]
    refreshed = live.http.post(
        live.token_endpoint(),
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": live.assertion(kid),
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    # Revocation authenticates the same way; aud is still the token endpoint.
    revoked = live.http.post(
        f"{live.base(SPECIALTY)}/oauth/revoke",
        data={
            "token": refreshed.json()["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": live.assertion(kid),
        },
    )
    assert revoked.status_code == 200, revoked.text


def test_a_replayed_jti_is_refused(live: Live) -> None:
    kid = live.keys.add("ES384")
    assertion = live.assertion(kid)
    assert _exchange(live, assertion).status_code == 200
    again = _exchange(live, assertion)
    assert again.status_code in (400, 401) and again.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://elsewhere.example/token"},
        {"exp": int(time.time()) - 600},
        {"exp": int(time.time()) + 3600},  # more than five minutes ahead
        {"iss": "someone-else"},
    ],
    ids=["wrong-aud", "expired", "exp-too-far", "iss-not-sub"],
)
def test_bad_claims_are_invalid_client(live: Live, claims: dict[str, Any]) -> None:
    kid = live.keys.add("RS384")
    refused = _exchange(live, live.assertion(kid, **claims))
    assert refused.status_code in (400, 401) and refused.json()["error"] == "invalid_client"


def test_an_unpublished_key_or_unknown_kid_is_invalid_client(live: Live) -> None:
    hidden = live.keys.add("RS384", publish=False)
    refused = _exchange(live, live.assertion(hidden))
    assert refused.status_code in (400, 401) and refused.json()["error"] == "invalid_client"
    # A published kid whose signature is by another key.
    shown = live.keys.add("RS384")
    live.keys.private[shown] = live.keys.private[hidden]
    forged = _exchange(live, live.assertion(shown))
    assert forged.json()["error"] == "invalid_client"


def test_the_client_secret_is_not_enough_there(live: Live) -> None:
    refused = _exchange(live, None, auth=("tether", "sandbox-secret"))
    assert refused.status_code in (400, 401) and refused.json()["error"] == "invalid_client"


def test_discovery_advertises_asymmetric_auth(live: Live) -> None:
    config = live.http.get(f"{live.base(SPECIALTY)}/fhir/.well-known/smart-configuration").json()
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "none"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    assert "client-confidential-symmetric" not in config["capabilities"]


def test_a_v1_source_has_only_metadata(live: Live) -> None:
    fhir = f"{live.base(LEGACY)}/fhir"
    assert live.http.get(f"{fhir}/.well-known/smart-configuration").status_code == 404
    statement = live.http.get(f"{fhir}/metadata").json()
    [oauth] = statement["rest"][0]["security"]["extension"]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    assert uris["token"] == f"{live.base(LEGACY)}/oauth/token"
    assert uris["authorize"] == f"{live.base(LEGACY)}/oauth/authorize"
