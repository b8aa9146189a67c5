"""A live sandbox on loopback, mounted at /sandbox like tether mounts it."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tether.sandbox import Sandbox, SandboxConfig, create_sandbox_app
from tether.sandbox.testing import complete_consent
from tether.testing.live_server import free_port, serve

CALLBACK = "http://127.0.0.1:9/oauth/callback"
ADMIN = "test-admin-secret"
CLINIC = "sandbox-clinic"


@dataclass
class Live:
    url: str  # the mount: .../sandbox
    sandbox: Sandbox
    http: httpx.Client

    def base(self, source: str = CLINIC) -> str:
        return f"{self.url}/{source}"

    def fhir(self, source: str = CLINIC) -> str:
        return f"{self.base(source)}/fhir"


@pytest.fixture(scope="session")
def live() -> Iterator[Live]:
    port = free_port()
    public = f"http://127.0.0.1:{port}/sandbox"
    app = create_sandbox_app(
        SandboxConfig(public_url=public, redirect_uris=[CALLBACK], admin_secret=ADMIN, seed=7)
    )
    with (
        serve(Starlette(routes=[Mount("/sandbox", app)]), port=port),
        httpx.Client(timeout=30) as http,
    ):
        yield Live(url=public, sandbox=app.sandbox, http=http)


@pytest.fixture(autouse=True)
def _reset_knobs(live: Live) -> Iterator[None]:
    yield
    for source in live.sandbox.config.sources:
        live.sandbox.reset(source.id)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authorize_url(
    live: Live,
    *,
    source: str = CLINIC,
    client_id: str = "tether",
    challenge: str | None = None,
    **overrides: str,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "launch/patient openid fhirUser offline_access patient/*.rs",
        "state": secrets.token_urlsafe(8),
        "aud": live.fhir(source),
        "code_challenge": challenge or pkce()[1],
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return (
        f"{live.base(source)}/oauth/authorize?{urlencode({k: v for k, v in params.items() if v})}"
    )


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def connect(
    live: Live,
    *,
    source: str = CLINIC,
    patient: str | None = None,
    scope: str | None = None,
    withhold: tuple[str, ...] = (),
    **overrides: str,
) -> dict[str, Any]:
    """Consent (unticking ``withhold``) and exchange the code with the confidential client;
    the token response. ``overrides``: authorization request parameters (``aud=""`` drops it)."""
    verifier, challenge = pkce()
    extra = {"scope": scope} if scope else {}
    location = complete_consent(
        live.http,
        authorize_url(live, source=source, challenge=challenge, **extra, **overrides),
        patient=patient,
        withhold=withhold,
    )
    answer = live.http.post(
        f"{live.base(source)}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": query_of(location)["code"],
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
        auth=("tether", "sandbox-secret"),
    )
    assert answer.status_code == 200, answer.text
    token: dict[str, Any] = answer.json()
    return token


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['access_token']}"}


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}
