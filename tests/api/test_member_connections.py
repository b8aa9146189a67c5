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


def test_the_tenants_list_across_members_pages_and_filters(
    client: httpx.Client,
    runtime: Runtime,
    member: MemberCtx,
    tenant: TenantCtx,
    other_tenant: TenantCtx,
) -> None:
    from tether.connections.tokens import expire

    bob = make_member(runtime, tenant, "bob")
    carol = make_member(runtime, tenant, "carol")
    stranger = make_member(runtime, other_tenant, "stranger")
    alice_conn = connected(client, member, runtime, CLINIC, "clinic-1")
    connected(client, bob, runtime, CLINIC, "clinic-2")
    connected(client, carol, runtime, "sandbox-lab", "lab-1")
    connected(client, stranger, runtime, CLINIC, "clinic-3")
    expire(
        runtime, connection_pk=alice_conn.id, epoch=alice_conn.grant_epoch, actor="t", reason="t"
    )

    def page(**params: object) -> dict:
        answer = client.get("/v1/connections", params=params, headers=tenant.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    everything = page()
    assert [i["externalId"] for i in everything["items"]] == ["alice", "bob", "carol"]
    assert everything["nextAfter"] is None
    assert everything["items"][0]["memberId"] == member.member_id
    first = page(limit=2)
    assert [i["externalId"] for i in first["items"]] == ["alice", "bob"]
    rest = page(limit=2, after=first["nextAfter"])
    assert [i["externalId"] for i in rest["items"]] == ["carol"] and rest["nextAfter"] is None
    assert [i["externalId"] for i in page(status="EXPIRED")["items"]] == ["alice"]
    expired = page(syncError="AUTHORIZATION_EXPIRED")["items"]
    assert [i["externalId"] for i in expired] == ["alice"]
    assert [i["externalId"] for i in page(connectionId="sandbox-lab")["items"]] == ["carol"]
    assert [i["id"] for i in page(externalId="bob")["items"]] == [CLINIC]
    assert [i["externalId"] for i in page(memberId=bob.member_id)["items"]] == ["bob"]
    assert page(externalId="stranger")["items"] == []  # another tenant's member: nothing
    bad = client.get("/v1/connections", params={"syncError": "%x"}, headers=tenant.headers)
    # The document says what a sync error code looks like, so the check is the schema's.
    assert bad.status_code == 422 and bad.json()["errors"][0]["location"] == "query.syncError"
    too_far = client.get("/v1/connections", params={"after": 2**64}, headers=tenant.headers)
    assert too_far.status_code == 422
    # A member token keeps the member's own list, and tenant-only filters are refused.
    mine = client.get("/v1/connections", headers=member.headers)
    assert mine.status_code == 200 and [c["id"] for c in mine.json()] == [CLINIC]
    refused = client.get("/v1/connections", params={"externalId": "bob"}, headers=member.headers)
    assert refused.status_code == 400 and refused.json()["code"] == "TENANT_ONLY_FILTER"
