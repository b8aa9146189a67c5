"""SMART discovery as tether meets it: v2 .well-known, v1 metadata, and what it must refuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import MemberCtx
from tests.sync.helpers import connected, stored
from tether.connections.retirement import import_directory
from tether.errors import SourceIncompatible, SourceUnavailable
from tether.oauth.smart_discovery import discover, require_client_auth
from tether.runtime import Runtime
from tether.sync.run import run_sync
from tether.testing.flow import get_redirect_url
from tether.testing.live_server import serve

LEGACY = "sandbox-legacy"


def test_a_v1_source_is_discovered_from_metadata_and_syncs(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    base = f"{runtime.settings.sandbox_url}/{LEGACY}/fhir"
    with httpx.Client() as http:
        config = discover(http, base)
    assert config.discovered_at == f"{base}/metadata"
    assert config.token_endpoint == f"{runtime.settings.sandbox_url}/{LEGACY}/oauth/token"
    assert config.revocation_endpoint and config.code_challenge_methods == ()
    conn = connected(client, member, runtime, LEGACY, "legacy-1")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert stored(runtime, conn.id)["Patient"] == 1


@pytest.fixture
def odd_server() -> Iterator[str]:
    """/plain/ offers only PKCE 'plain', /basic/ only client_secret_basic, /empty/ nothing."""

    async def configuration(request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        methods = ["plain"] if "/plain/" in request.url.path else ["S256"]
        return JSONResponse(
            {
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "code_challenge_methods_supported": methods,
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def not_a_statement(request: Request) -> JSONResponse:
        return JSONResponse({"resourceType": "OperationOutcome"})

    app = Starlette(
        routes=[
            Route("/plain/fhir/.well-known/smart-configuration", configuration),
            Route("/basic/fhir/.well-known/smart-configuration", configuration),
            Route("/empty/fhir/metadata", not_a_statement),
        ]
    )
    with serve(app) as live:
        yield live.url


def test_neither_discovery_works_names_both_urls(odd_server: str) -> None:
    base = f"{odd_server}/empty/fhir"
    with httpx.Client() as http, pytest.raises(SourceUnavailable) as failed:
        discover(http, base)
    message = str(failed.value)
    assert f"{base}/.well-known/smart-configuration (HTTP 404)" in message
    assert f"{base}/metadata (not a CapabilityStatement)" in message


def test_pkce_without_s256_is_refused(odd_server: str) -> None:
    with httpx.Client() as http, pytest.raises(SourceIncompatible) as refused:
        discover(http, f"{odd_server}/plain/fhir")
    assert "S256" in str(refused.value)


def test_client_auth_must_be_among_the_listed_methods(odd_server: str) -> None:
    with httpx.Client() as http:
        config = discover(http, f"{odd_server}/basic/fhir")
    require_client_auth(config, "client_secret_basic")
    with pytest.raises(SourceIncompatible) as refused:
        require_client_auth(config, "private_key_jwt")
    assert "private_key_jwt" in str(refused.value)
    assert "token_endpoint_auth_methods_supported" in str(refused.value)


def test_a_directory_method_the_source_does_not_list_is_a_clear_502(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, tmp_path: Path
) -> None:
    directory = tmp_path / "sources.yaml"
    directory.write_text(
        """
- id: clinic-asymmetric
  name: Clinic Asymmetric
  type: CLINICAL
  fhir_base_url: "{sandbox}/sandbox-clinic/fhir"
  oauth: {client_id: tether, token_endpoint_auth_method: private_key_jwt}
- id: nowhere
  name: Nowhere Hospital
  type: CLINICAL
  fhir_base_url: "{sandbox}/no-such-source/fhir"
  oauth: {client_id: tether, client_secret: x}
"""
    )
    import_directory(runtime, directory)
    url = get_redirect_url(client, member.headers, "clinic-asymmetric")
    launched = client.get(url, follow_redirects=False)  # the member's browser: an HTML page
    assert launched.status_code == 502
    assert "cannot be connected as configured" in launched.text
    assert "private_key_jwt" in launched.text and "client_secret_basic" in launched.text

    url = get_redirect_url(client, member.headers, "nowhere")
    launched = client.get(url, follow_redirects=False)
    assert launched.status_code == 502 and "could not reach the data source" in launched.text
