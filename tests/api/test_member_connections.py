"""A member's connections through the tenant's API key: the member's own operations, scoped to
the tenant's members, audited as the tenant."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from tests.conftest import MemberCtx, TenantCtx, make_member
from tests.sync.helpers import connected, reload
from tether.runtime import Runtime
from tether.store.models import AuditEvent

CLINIC = "sandbox-clinic"


def test_the_tenant_acts_on_its_members_connections(
    client: httpx.Client, runtime: Runtime, member: MemberCtx, tenant: TenantCtx
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    base = f"/v1/members/{member.member_id}/connections"
    listed = client.get(base, headers=tenant.headers)
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [CLINIC]
    assert listed.json() == client.get("/v1/connections", headers=member.headers).json()
    one = client.get(f"{base}/{CLINIC}", headers=tenant.headers)
    assert one.status_code == 200 and one.json()["status"] == "CONNECTED"
    synced = client.post(f"{base}/{CLINIC}/sync", headers=tenant.headers)
    assert synced.status_code == 202
    off = client.post(f"{base}/{CLINIC}/disconnect", headers=tenant.headers)
    assert off.status_code == 200 and off.json()["status"] == "DISCONNECTED"
    with runtime.db.read() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "connection.disconnected")
        ).one()
    assert event.actor == f"tenant:{tenant.tenant_id}"
    gone = client.delete(f"{base}/{CLINIC}", headers=tenant.headers)
    assert gone.status_code == 202 and gone.json()["status"] == "DELETED"
    assert reload(runtime, conn.id).status == "DELETED"


def test_only_the_tenants_own_members_and_only_with_the_api_key(
    client: httpx.Client,
    runtime: Runtime,
    member: MemberCtx,
    tenant: TenantCtx,
    other_tenant: TenantCtx,
) -> None:
    stranger = make_member(runtime, other_tenant, "stranger")
    conn = connected(client, stranger, runtime, CLINIC, "clinic-1")
    base = f"/v1/members/{stranger.member_id}/connections"
    for method, path in (
        ("GET", base),
        ("GET", f"{base}/{CLINIC}"),
        ("POST", f"{base}/{CLINIC}/sync"),
        ("POST", f"{base}/{CLINIC}/disconnect"),
        ("DELETE", f"{base}/{CLINIC}"),
    ):
        answer = client.request(method, path, headers=tenant.headers)
        assert answer.status_code == 404, (method, path)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "UNKNOWN_MEMBER"
        # A member token is not the tenant's key, even the member's own.
        assert client.request(method, path, headers=stranger.headers).status_code == 403
    assert reload(runtime, conn.id).status == "CONNECTED"
    mine = f"/v1/members/{member.member_id}/connections/{CLINIC}"
    missing = client.get(mine, headers=tenant.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "UNKNOWN_CONNECTION"
