"""The events and webhook-endpoint API: who may call it, what it refuses, replay, redeliver,
retention; the SSRF guard at registration and at connection time; the sync history."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import MemberCtx, TenantCtx
from tests.sync.helpers import connected
from tests.webhooks.test_webhooks import emit, register
from tether import events
from tether.errors import InvalidRequest
from tether.runtime import Runtime
from tether.store.models import Event, SyncRun, WebhookDelivery, utcnow
from tether.sync import history
from tether.webhooks import ssrf

CLINIC = "sandbox-clinic"
HOOK = "https://hooks.example.test/tether"


def test_endpoints_are_the_tenants_own_and_need_the_api_key(
    client: httpx.Client,
    tenant: TenantCtx,
    other_tenant: TenantCtx,
    member: MemberCtx,
) -> None:
    made = register(client, tenant, HOOK, events=["sync.failed", "connection.expired"])
    assert made["events"] == ["sync.failed", "connection.expired"]
    path = f"/v1/webhook-endpoints/{made['id']}"
    assert client.get(path, headers=other_tenant.headers).status_code == 404
    as_member = client.get("/v1/webhook-endpoints", headers=member.headers)
    assert as_member.status_code == 403
    assert as_member.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/events", headers=member.headers).status_code == 403
    assert client.get("/v1/webhook-endpoints", headers=other_tenant.headers).json() == []
    listed = client.get("/v1/webhook-endpoints", headers=tenant.headers).json()
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    changed = client.patch(
        path, json={"description": "ops", "events": []}, headers=tenant.headers
    ).json()
    assert changed["description"] == "ops" and changed["events"] == []
    assert client.delete(path, headers=other_tenant.headers).status_code == 404
    assert client.delete(path, headers=tenant.headers).status_code == 204
    assert client.get(path, headers=tenant.headers).status_code == 404


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"url": HOOK, "events": ["connection.exploded"]}, "events"),
        ({"url": HOOK, "secret": "mine"}, "secret"),
        ({"url": "ftp://hooks.example.test/x"}, "url"),
        ({"url": "https://user:pw@hooks.example.test/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://" + "a" * 2100 + ".test/"}, "url"),
        ({}, "url"),
    ],
)
def test_bad_endpoints_are_refused_with_a_problem_and_nothing_is_kept(
    client: httpx.Client, tenant: TenantCtx, body: dict, where: str
) -> None:
    answer = client.post("/v1/webhook-endpoints", json=body, headers=tenant.headers)
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert where in answer.text
    assert client.get("/v1/webhook-endpoints", headers=tenant.headers).json() == []


def test_private_targets_are_refused_unless_the_operator_allows_them(
    client: httpx.Client, tenant: TenantCtx, runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"webhooks_allow_private": False})
    for url in (
        "http://hooks.example.test/x",  # plain http
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[fd00:ec2::254]/x",
        "https://100.64.0.1/x",
    ):
        answer = client.post("/v1/webhook-endpoints", json={"url": url}, headers=tenant.headers)
        assert answer.status_code == 400, url
        assert answer.json()["code"] in ("INVALID_URL", "PRIVATE_URL"), url
    public = ssrf.check_url(
        "https://hooks.example.test/x", allow_private=False, resolve=lambda h, p: ["93.184.215.14"]
    )
    assert public == "https://hooks.example.test/x"
    with pytest.raises(InvalidRequest):  # one private address among public ones is enough
        ssrf.check_url(
            "https://hooks.example.test/x",
            allow_private=False,
            resolve=lambda h, p: ["93.184.215.14", "10.0.0.7"],
        )


def test_the_delivery_transport_checks_the_address_again_after_dns() -> None:
    """A name that passed at registration and resolves to loopback later (DNS rebinding) is
    refused when the connection is made, before anything is sent."""
    guarded = ssrf.GuardedTransport(resolve=lambda host, port: ["127.0.0.1"])
    with httpx.Client(transport=guarded) as http, pytest.raises(httpx.ConnectError) as caught:
        http.post("https://hooks.example.test/x", content=b"{}")
    assert "non-public" in str(caught.value)
    assert ssrf.blocked("::ffff:127.0.0.1") and ssrf.blocked("0.0.0.0")  # noqa: S104
    assert not ssrf.blocked("93.184.215.14")


def test_replay_and_redeliver_queue_events_again(
    client: httpx.Client, tenant: TenantCtx, runtime: Runtime
) -> None:
    made = register(client, tenant, HOOK, events=["sync.completed"])
    start = utcnow()
    ids = emit(runtime, tenant, 3) + emit(runtime, tenant, 1, type=events.SYNC_FAILED)
    path = f"/v1/webhook-endpoints/{made['id']}"
    with runtime.db.write() as session:  # as if all had gone out
        for d in session.scalars(select(WebhookDelivery)):
            d.state = "delivered"
    replayed = client.post(
        f"{path}/replay", json={"since": start.isoformat()}, headers=tenant.headers
    )
    assert replayed.status_code == 202 and replayed.json() == {"queued": 3}  # its types only
    pending = client.get(
        f"{path}/deliveries", params={"state": "pending"}, headers=tenant.headers
    ).json()
    assert sorted(d["eventId"] for d in pending["items"]) == sorted(ids[:3])
    naive = client.post(
        f"{path}/replay", json={"since": "2026-01-01T00:00:00"}, headers=tenant.headers
    )
    assert naive.status_code == 422
    again = client.post(f"/v1/events/{ids[0]}/redeliver", headers=tenant.headers)
    assert again.status_code == 202 and again.json() == {"queued": 1}
    unknown = client.post("/v1/events/evt_nope/redeliver", headers=tenant.headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "UNKNOWN_EVENT"
    bad_cursor = client.get("/v1/events", params={"after": "evt_nope"}, headers=tenant.headers)
    assert bad_cursor.status_code == 404


def test_events_older_than_the_retention_go_with_their_deliveries(
    client: httpx.Client, tenant: TenantCtx, runtime: Runtime
) -> None:
    register(client, tenant, HOOK)
    emit(runtime, tenant, 2)
    with runtime.db.write() as session:
        purged = events.purge(session, now=utcnow() + timedelta(days=29), retention_days=30)
    assert purged == 0
    with runtime.db.write() as session:
        purged = events.purge(session, now=utcnow() + timedelta(days=31), retention_days=30)
    assert purged == 2
    with runtime.db.read() as session:
        assert session.scalars(select(Event)).all() == []
        assert session.scalars(select(WebhookDelivery)).all() == []


def test_the_sync_history_for_the_member_and_for_the_tenant(
    client: httpx.Client,
    tenant: TenantCtx,
    member: MemberCtx,
    other_member: MemberCtx,
    runtime: Runtime,
) -> None:
    from tether.sync.run import run_sync

    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, trigger="initial")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, trigger="manual")
    mine = client.get(f"/v1/connections/{CLINIC}/syncs", headers=member.headers)
    assert mine.status_code == 200
    runs = mine.json()
    assert [r["trigger"] for r in runs] == ["manual", "initial"]  # newest first
    first, second = runs[1], runs[0]
    assert first["outcome"] == "RETRIEVED" and first["resources"]["Patient"]["added"] == 1
    assert first["pages"] >= 1 and first["requests"] >= first["pages"]
    assert all(v["added"] == 0 for v in second["resources"].values())  # nothing new the 2nd time
    assert first["started"] <= first["finished"]
    as_tenant = client.get(
        f"/v1/members/{member.member_id}/connections/{CLINIC}/syncs", headers=tenant.headers
    )
    assert as_tenant.json() == runs
    other = client.get(f"/v1/connections/{CLINIC}/syncs", headers=other_member.headers)
    assert other.status_code == 404
    assert client.get(f"/v1/connections/{CLINIC}/syncs", headers=tenant.headers).status_code == 403


def test_the_history_keeps_the_last_hundred_runs(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    now = utcnow()
    with runtime.db.write() as session:
        row = session.get(type(conn), conn.id)
        for i in range(history.KEEP + 5):
            history.record_run(
                session,
                row,
                trigger="scheduled",
                started=now,
                finished=now,
                outcome="RETRIEVED",
                counts={},
                pages=i,
                requests=i,
                retries=0,
                throttled_seconds=0.0,
                errors=[],
            )
    with runtime.db.read() as session:
        kept = session.scalars(select(SyncRun.pages).where(SyncRun.connection_id == conn.id)).all()
    assert len(kept) == history.KEEP and min(kept) == 5
