"""The operator console over HTTP: sign-in with the tenant's API key, a tenant sees only its
own members, filters, actions through the same services (audited as the console), CSRF."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import MemberCtx, TenantCtx, make_member
from tests.sync.helpers import connected, reload
from tests.web.conftest import csrf_of
from tether.connections.tokens import expire
from tether.identity import api_keys
from tether.runtime import Runtime
from tether.store.models import AuditEvent
from tether.sync.run import run_sync
from tether.testing.live_server import LiveServer

CLINIC = "sandbox-clinic"
LAB = "sandbox-lab"


def signed_in(server: LiveServer, tenant: TenantCtx) -> httpx.Client:
    browser = httpx.Client(base_url=server.url, timeout=30)
    answer = browser.post(
        "/console/signin",
        data={"api_key": tenant.api_key},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    return browser


@pytest.fixture
def console(server: LiveServer, tenant: TenantCtx) -> Iterator[httpx.Client]:
    browser = signed_in(server, tenant)
    yield browser
    browser.close()


def test_sign_in_needs_the_tenants_api_key(
    server: LiveServer, client: httpx.Client, member: MemberCtx, tenant: TenantCtx
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert browser.get("/console").status_code == 303  # to the sign-in page
        page = browser.get("/console/signin")
        assert page.status_code == 200 and 'type="password"' in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        same = {"Sec-Fetch-Site": "same-origin"}
        for wrong in ("tk_nope_nope", member.token, ""):
            refused = browser.post("/console/signin", data={"api_key": wrong}, headers=same)
            assert refused.status_code == 401 and "not a valid API key" in refused.text
            assert not browser.cookies
        cross = browser.post(
            "/console/signin",
            data={"api_key": tenant.api_key},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert cross.status_code == 403 and not browser.cookies
        ok = browser.post("/console/signin", data={"api_key": tenant.api_key}, headers=same)
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert tenant.api_key not in cookie
        assert browser.get("/console").status_code == 200


def test_a_tenant_sees_only_its_own_members(
    server: LiveServer,
    client: httpx.Client,
    runtime: Runtime,
    member: MemberCtx,
    other_tenant: TenantCtx,
    console: httpx.Client,
) -> None:
    mine = connected(client, member, runtime, CLINIC, "clinic-1")
    stranger = make_member(runtime, other_tenant, "stranger")
    theirs = connected(client, stranger, runtime, LAB, "lab-1")
    listing = console.get("/console").text
    assert f'data-connection="{CLINIC}"' in listing and "alice" in listing
    assert "stranger" not in listing and f'data-connection="{LAB}"' not in listing
    # Another tenant's member does not exist for this console: no page, no action.
    assert console.get(f"/console/members/{stranger.member_id}").status_code == 404
    csrf = csrf_of(console.get(f"/console/members/{member.member_id}").text)
    refused = console.post(
        f"/console/members/{stranger.member_id}/connections/{LAB}/disconnect",
        data={"csrf": csrf},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert refused.status_code == 404
    assert reload(runtime, theirs.id).status == "CONNECTED"
    assert reload(runtime, mine.id).status == "CONNECTED"


def test_filters_find_expired_and_failing_connections(
    client: httpx.Client, runtime: Runtime, member: MemberCtx, console: httpx.Client
) -> None:
    bob = make_member(runtime, member.tenant, "bob")
    expired = connected(client, member, runtime, CLINIC, "clinic-1")
    fine = connected(client, bob, runtime, CLINIC, "clinic-2")
    run_sync(runtime, connection_pk=fine.id, epoch=fine.grant_epoch)
    expire(runtime, connection_pk=expired.id, epoch=expired.grant_epoch, actor="test", reason="t")
    page = console.get("/console", params={"status": "EXPIRED"}).text
    assert 'data-member="alice"' in page and 'data-member="bob"' not in page
    page = console.get("/console", params={"syncError": "AUTHORIZATION_EXPIRED"}).text
    assert 'data-member="alice"' in page and 'data-member="bob"' not in page
    page = console.get("/console", params={"syncStatus": "RETRIEVED", "member": "bob"}).text
    assert 'data-member="bob"' in page and 'data-member="alice"' not in page
    assert console.get("/console", params={"status": "NOPE"}).status_code == 400
    bad = console.get("/console", params={"syncError": '%"code'})
    assert bad.status_code == 400 and "not a sync error code" in bad.text


def test_actions_go_through_the_services_and_are_audited_as_the_console(
    client: httpx.Client,
    runtime: Runtime,
    member: MemberCtx,
    tenant: TenantCtx,
    console: httpx.Client,
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    page = console.get(f"/console/members/{member.member_id}")
    csrf = csrf_of(page.text)
    same = {"Sec-Fetch-Site": "same-origin"}
    action = f"/console/members/{member.member_id}/connections/{CLINIC}"
    # Without the CSRF secret, or from another site: refused, nothing changes.
    assert console.post(f"{action}/disconnect", headers=same).status_code == 403
    cross = console.post(
        f"{action}/disconnect", data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    assert reload(runtime, conn.id).status == "CONNECTED"
    done = console.post(f"{action}/disconnect", data={"csrf": csrf}, headers=same)
    assert done.status_code == 303 and "notice=disconnect" in done.headers["location"]
    assert reload(runtime, conn.id).status == "DISCONNECTED"
    with runtime.db.read() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "connection.disconnected")
        ).one()
    assert event.actor == f"console:{tenant.tenant_id}"
    # Delete asks first (a page), then does it.
    confirm = console.get(f"{action}/delete")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    deleted = console.post(f"{action}/delete", data={"csrf": csrf}, headers=same)
    assert deleted.status_code == 303
    assert reload(runtime, conn.id).status == "DELETED"
    assert console.post(f"{action}/explode", data={"csrf": csrf}, headers=same).status_code == 404


def test_revoking_the_key_ends_the_console_session(
    client: httpx.Client, runtime: Runtime, member: MemberCtx, console: httpx.Client
) -> None:
    assert console.get("/console").status_code == 200
    for key in api_keys.list_api_keys(runtime, tenant_id=member.tenant.tenant_id):
        api_keys.revoke(runtime, key_id=key.key_id, tenant_id=member.tenant.tenant_id)
    after = console.get("/console")
    assert after.status_code == 303 and after.headers["location"] == "/console/signin"


def test_source_health_and_queue_pages(
    client: httpx.Client, runtime: Runtime, member: MemberCtx, console: httpx.Client
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")  # queues its first sync
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    sources = console.get("/console/sources").text
    assert f'data-source="{CLINIC}" data-health="ok"' in sources
    queue = console.get("/console/queue").text
    assert 'data-fact="depth">1<' in queue  # the connect's sync job: no worker in this test


def test_webhook_pages_show_only_the_tenants_endpoints_and_redeliver_needs_csrf(
    client: httpx.Client,
    runtime: Runtime,
    tenant: TenantCtx,
    other_tenant: TenantCtx,
    server: LiveServer,
    console: httpx.Client,
) -> None:
    from tests.webhooks.test_webhooks import emit
    from tether.store.models import WebhookDelivery

    runtime.settings = runtime.settings.model_copy(update={"webhooks_allow_private": True})
    mine = client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/a"}, headers=tenant.headers
    ).json()
    theirs = client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/b"}, headers=other_tenant.headers
    ).json()
    (event_id,) = emit(runtime, tenant, 1)
    listing = console.get("/console/webhooks")
    assert mine["id"] in listing.text and theirs["id"] not in listing.text
    assert console.get(f"/console/webhooks/{theirs['id']}").status_code == 404
    page = console.get(f"/console/webhooks/{mine['id']}")
    assert event_id in page.text
    with runtime.db.write() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        delivery.state, delivery.attempts = "failed", 8
    action = f"/console/webhooks/{mine['id']}/redeliver/{event_id}"
    same = {"Sec-Fetch-Site": "same-origin"}
    assert console.post(action, headers=same).status_code == 403  # no CSRF secret
    done = console.post(action, data={"csrf": csrf_of(page.text)}, headers=same)
    assert done.status_code == 303
    with runtime.db.read() as session:
        again = session.scalars(select(WebhookDelivery)).one()
    assert again.state == "pending" and again.attempts == 0
