"""Native apps (RFC 8252): the whole OAuth flow back to a private-use-scheme or loopback return
URL, exact matching of registered return URLs, and a disabled tenant's links stopping."""

from __future__ import annotations

import httpx

from tests.conftest import MemberCtx
from tether.accounts import tenants
from tether.runtime import Runtime
from tether.testing.flow import authorize_in_browser, connect, get_redirect_url

CLINIC = "sandbox-clinic"
APP = "com.example.health:/connected"
LOOPBACK = "http://127.0.0.1:8765/callback"


def _register(client: httpx.Client, member: MemberCtx) -> None:
    response = client.patch(
        "/v1/tenant", headers=member.tenant.headers, json={"returnUrls": [APP, LOOPBACK]}
    )
    assert response.status_code == 200, response.text


def test_the_flow_lands_on_a_private_use_scheme(client: httpx.Client, member: MemberCtx) -> None:
    _register(client, member)
    result = connect(client, member.headers, CLINIC, patient="clinic-1", return_url=APP)
    assert result.response.status_code == 302
    assert result.response.headers["location"] == (
        f"com.example.health:/connected?status_code=success&connectionId={CLINIC}"
    )
    listed = client.get("/v1/connections", headers=member.headers).json()
    assert [(c["id"], c["status"]) for c in listed] == [(CLINIC, "CONNECTED")]


def test_a_refusal_lands_on_the_loopback_url_too(client: httpx.Client, member: MemberCtx) -> None:
    _register(client, member)
    denied = connect(
        client, member.headers, CLINIC, patient="clinic-1", approve=False, return_url=LOOPBACK
    )
    assert denied.response.headers["location"] == (
        f"{LOOPBACK}?status_code=access_denied&connectionId={CLINIC}"
    )


def test_return_urls_match_exactly_and_are_checked(client: httpx.Client, member: MemberCtx) -> None:
    _register(client, member)

    def ask(return_url: str) -> httpx.Response:
        return client.post(
            f"/v1/connections/{CLINIC}/oauth-url",
            json={"returnUrl": return_url},
            headers=member.headers,
        )

    assert ask(APP + "?tab=records").status_code == 200  # the query may differ
    for near_miss in (
        "com.example.health:/connected/more",  # another path
        "com.example.healthx:/connected",  # another scheme
        "http://127.0.0.1:8766/callback",  # another port
        "http://localhost:8765/callback",  # another host
    ):
        refused = ask(near_miss)
        assert refused.status_code == 400, near_miss
        assert refused.json()["code"] == "RETURN_URL_NOT_ALLOWED", near_miss
    for malformed in ("javascript:alert(1)", APP + "#fragment", "myapp:/connected"):
        refused = ask(malformed)
        assert refused.status_code == 400, malformed
        assert refused.json()["field"] == "returnUrl", malformed


def test_a_disabled_tenants_launch_link_stops(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    link = get_redirect_url(client, member.headers, CLINIC)
    tenants.set_disabled(runtime, tenant_id=member.tenant.tenant_id, actor="test", disabled=True)
    with httpx.Client(timeout=30) as browser:
        result = authorize_in_browser(browser, link, patient="clinic-1")
    assert result.response.status_code == 401
    assert "This link cannot be used" in result.response.text
