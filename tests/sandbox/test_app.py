"""Mounting and state: URLs derived from the request, tokens kept across restarts."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from tether.sandbox import SandboxConfig, create_sandbox_app
from tether.sandbox.store import GrantStore, TokenRow, digest
from tether.testing.live_server import serve


def test_urls_derive_from_the_request_when_public_url_is_none() -> None:
    main = FastAPI()
    main.mount("/sandbox", create_sandbox_app(SandboxConfig(public_url=None)))
    with serve(main) as server:
        config = httpx.get(
            f"{server.url}/sandbox/sandbox-lab/fhir/.well-known/smart-configuration"
        ).json()
        listing = httpx.get(f"{server.url}/sandbox/").json()
    assert config["issuer"] == f"{server.url}/sandbox/sandbox-lab"
    assert listing["sources"][2]["fhir_base"] == f"{server.url}/sandbox/sandbox-lab/fhir"


def test_state_path_keeps_tokens_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.sqlite"
    first = GrantStore(path)
    first.save_token(
        TokenRow(
            access_digest=digest("a"),
            refresh_digest=digest("refresh-token-in-clear"),
            source="s",
            client_id="c",
            scope="offline_access",
            patient="p",
            issued_at=0,
            access_expires_at=1,
            refresh_expires_at=2,
            access_revoked=False,
            refresh_revoked=False,
            grant_id="g",
        )
    )
    first.close()
    again = GrantStore(path)
    found = again.find_refresh("refresh-token-in-clear", source="s")
    assert found is not None
    assert found.patient == "p"
    assert b"refresh-token-in-clear" not in path.read_bytes()
    again.close()
