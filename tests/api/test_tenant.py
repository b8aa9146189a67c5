"""``GET`` and ``PATCH /v1/tenant``: a tenant reads and changes its own settings, every change
audited, bad input a problem naming its field with nothing half-saved; and disabling a tenant
stops every kind of credential it has (on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import MemberCtx, TenantCtx
from tests.graphql.sdk_wire import SdkClient, client_key
from tether.accounts import tenants
from tether.runtime import Runtime
from tether.testing.live_server import LiveServer


def _audit(client: httpx.Client, tenant: TenantCtx) -> list[dict[str, Any]]:
    response = client.get("/v1/audit-events", headers=tenant.headers)
    assert response.status_code == 200
    return [e for e in response.json()["items"] if e["action"].startswith("tenant.")]


def test_a_tenant_reads_its_own_settings(client: httpx.Client, tenant: TenantCtx) -> None:
    response = client.get("/v1/tenant", headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == tenant.tenant_id and body["name"] == "Acme Health"
    assert body["returnUrls"] == ["https://app.example.test/connected"]
    assert body["allowedOrigins"] == [] and body["disabled"] is False


def test_patch_changes_what_is_given_and_audits_it(
    client: httpx.Client, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    urls = ["https://app.example.test/connected", "com.example.health:/connected"]
    response = client.patch(
        "/v1/tenant",
        headers=tenant.headers,
        json={"returnUrls": urls, "allowedOrigins": ["https://App.Example.test/"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["returnUrls"] == urls
    assert body["allowedOrigins"] == ["https://app.example.test"]
    assert body["name"] == "Acme Health"  # not given: unchanged

    renamed = client.patch("/v1/tenant", headers=tenant.headers, json={"name": " Acme Care "})
    assert renamed.json()["name"] == "Acme Care"
    assert client.get("/v1/tenant", headers=tenant.headers).json() == renamed.json()
    # Saying what is already there changes nothing and is no event.
    same = client.patch("/v1/tenant", headers=tenant.headers, json={"name": "Acme Care"})
    assert same.status_code == 200

    events = _audit(client, tenant)
    assert [e["action"] for e in events] == ["tenant.updated", "tenant.updated"]
    assert all(e["actor"] == f"tenant:{tenant.tenant_id}" for e in events)
    first = events[0]["detail"]["changed"]
    assert first["returnUrls"] == {"from": ["https://app.example.test/connected"], "to": urls}
    assert first["allowedOrigins"]["to"] == ["https://app.example.test"]
    assert events[1]["detail"]["changed"] == {"name": {"from": "Acme Health", "to": "Acme Care"}}
    # The other tenant saw and changed nothing.
    other = client.get("/v1/tenant", headers=other_tenant.headers).json()
    assert other["name"] == "Other App" and _audit(client, other_tenant) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"returnUrls": ["https://ok.test/x", "javascript:alert(1)"]}, "returnUrls[1]"),
        ({"returnUrls": ["data:text/html,hi"]}, "returnUrls[0]"),
        ({"returnUrls": ["file:///etc/passwd"]}, "returnUrls[0]"),
        ({"returnUrls": ["myapp:/connected"]}, "returnUrls[0]"),
        ({"returnUrls": ["http://app.example.test/x"]}, "returnUrls[0]"),
        ({"returnUrls": ["https://a.test:notaport/x"]}, "returnUrls[0]"),
        ({"returnUrls": ["https://a.test/x", "https://a.test/x"]}, "returnUrls[1]"),
        ({"returnUrls": [f"https://a.test/{i}" for i in range(21)]}, "returnUrls"),
        ({"allowedOrigins": ["https://a.test/path"]}, "allowedOrigins[0]"),
        ({"allowedOrigins": ["*"]}, "allowedOrigins[0]"),
        # A good name with a bad URL: the name is not saved either.
        ({"name": "New name", "returnUrls": ["javascript:x"]}, "returnUrls[0]"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field_and_saves_nothing(
    client: httpx.Client, tenant: TenantCtx, body: dict[str, Any], field: str
) -> None:
    before = client.get("/v1/tenant", headers=tenant.headers).json()
    response = client.patch("/v1/tenant", headers=tenant.headers, json=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:tether:problem:invalid-request"
    assert problem["field"] == field and problem["detail"].startswith(field + ": ")
    assert client.get("/v1/tenant", headers=tenant.headers).json() == before
    assert _audit(client, tenant) == []


def test_wrong_shapes_are_validation_problems(client: httpx.Client, tenant: TenantCtx) -> None:
    for body in ({"returnUrls": "https://a.test/x"}, {"unknown": 1}, {"name": 5}):
        response = client.patch("/v1/tenant", headers=tenant.headers, json=body)
        assert response.status_code == 422, body
        assert response.json()["errors"], body


def test_members_cannot_read_or_change_the_tenant(client: httpx.Client, member: MemberCtx) -> None:
    assert client.get("/v1/tenant", headers=member.headers).status_code == 403
    patch = client.patch("/v1/tenant", headers=member.headers, json={"name": "Mine"})
    assert patch.status_code == 403
    assert client.get("/v1/tenant").status_code == 401


def test_disabling_a_tenant_stops_every_credential_until_enabled(
    server: LiveServer, client: httpx.Client, runtime: Runtime, member: MemberCtx
) -> None:
    tenant = member.tenant
    minted = client.post(f"/v1/members/{member.member_id}/tokens", headers=tenant.headers)
    member_token = minted.json()["token"]
    sdk = SdkClient(client, client_key(tenant.tenant_id))
    assert not sdk.authenticate_token(member_token).errors and sdk.refresh_token
    links = []
    for _ in range(2):
        made = client.post(f"/v1/members/{member.member_id}/app-links", headers=tenant.headers)
        links.append(str(made.json()["url"]).partition("#")[2])
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert browser.post("/app/enter", data={"token": links[0]}).status_code == 303
        assert browser.get("/app").status_code == 200

        tenants.set_disabled(runtime, tenant_id=tenant.tenant_id, actor="test", disabled=True)

        # API key
        refused = client.get("/v1/tenant", headers=tenant.headers)
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
        # member tokens: the operator's and the one the API key minted
        for token in (member.token, member_token):
            rest = client.get("/v1/connections", headers={"Authorization": f"Bearer {token}"})
            assert rest.status_code == 401 and "disabled" in rest.json()["detail"]
        # the SDK's refresh token and its access token
        assert sdk.refresh().code == "TENANT_DISABLED"
        assert sdk.connections().code == "UNAUTHENTICATED"
        assert sdk.authenticate_token(member.token).code == "UNAUTHENTICATED"
        # an unused app link, and the page session an app link opened
        late = browser.post("/app/enter", data={"token": links[1]})
        assert late.status_code == 401 and "set-cookie" not in late.headers
        assert browser.get("/app").status_code == 401

        tenants.set_disabled(runtime, tenant_id=tenant.tenant_id, actor="test", disabled=False)
        assert client.get("/v1/tenant", headers=tenant.headers).status_code == 200
        assert browser.get("/app").status_code == 200
        assert not sdk.refresh().errors and not sdk.connections().errors
    actions = [e["action"] for e in _audit(client, tenant)]
    assert actions == ["tenant.disabled", "tenant.enabled"]
