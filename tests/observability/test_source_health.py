"""Source health: every process's view of a data source, summed; a source that fails for
everyone is degraded, and its connections are not moved to ERROR one by one."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import MemberCtx, make_member
from tests.sync.helpers import codes, connected, reload, stored
from tether.connections import source_health
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.sync.run import run_sync

CLINIC = "sandbox-clinic"


def health(client: httpx.Client, member: MemberCtx) -> dict:
    answer = client.get(f"/v1/data-sources/{CLINIC}/health", headers=member.tenant.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_health_needs_an_api_key_and_a_known_source(
    client: httpx.Client, member: MemberCtx
) -> None:
    assert client.get(f"/v1/data-sources/{CLINIC}/health").status_code == 401
    as_member = client.get(f"/v1/data-sources/{CLINIC}/health", headers=member.headers)
    assert as_member.status_code == 403
    unknown = client.get("/v1/data-sources/nope/health", headers=member.tenant.headers)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert health(client, member)["status"] == "unknown"  # nothing asked of it yet


def test_a_good_sync_makes_a_healthy_source(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED"
    source_health.flush(runtime)
    seen = health(client, member)
    assert seen["status"] == "ok"
    assert seen["requestsLastHour"] >= 12  # discovery, token exchange and every type's search
    assert seen["failuresLastHour"] == 0 and seen["errorRateLastHour"] == 0
    assert seen["lastSuccessAt"] is not None and seen["lastFailureAt"] is None
    assert seen["degradedSince"] is None and seen["failingConnections"] == 0


def test_throttling_is_shown_until_retry_after_ends(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    sandbox.set_knobs(CLINIC, {"rate_429": 1.0, "retry_after": 600})
    try:
        run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    finally:
        sandbox.reset(CLINIC)
    source_health.flush(runtime)
    seen = health(client, member)
    assert seen["throttledLastHour"] >= 1
    assert seen["throttledUntil"] is not None
    assert seen["status"] == "ok"  # a throttling source is not a failing one


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_source_down_for_everyone_is_degraded_and_connections_keep_their_status(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    members = [member] + [make_member(runtime, member.tenant, f"m{i}") for i in range(3)]
    conns = []
    patients = ["clinic-1", "clinic-2", "clinic-3", "clinic-1"]  # two members may share one
    for who, patient in zip(members, patients, strict=True):
        conn = connected(client, who, runtime, CLINIC, patient)
        assert (
            run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch).status == "RETRIEVED"
        )
        conns.append(conn)
    sandbox.set_knobs(CLINIC, {"rate_503": 1.0, "retry_after": 0})
    try:
        # Alone, a failing source is judged per connection: the first ones go to ERROR.
        for conn in conns[: source_health.DEGRADED_MIN_CONNECTIONS - 1]:
            run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
            after = reload(runtime, conn.id)
            assert after.sync_status == "ERROR" and codes(after) == ["SOURCE_UNAVAILABLE"]
        # The third failing connection shows it is the source: it is degraded from now on.
        third = conns[source_health.DEGRADED_MIN_CONNECTIONS - 1]
        run_sync(runtime, connection_pk=third.id, epoch=third.grant_epoch)
        seen = health(client, member)
        assert seen["status"] == "degraded" and seen["degradedSince"] is not None
        assert seen["failingConnections"] == 3 and seen["failuresLastHour"] >= 3
        assert reload(runtime, third.id).sync_status == "RETRIEVED"  # the third is held already
        fourth = conns[3]
        before = runtime.clock()
        run_sync(runtime, connection_pk=fourth.id, epoch=fourth.grant_epoch)
        after = reload(runtime, fourth.id)
        assert after.sync_status == "RETRIEVED"  # its data is still there and still current
        assert codes(after) == ["SOURCE_UNAVAILABLE"]
        assert after.status == "CONNECTED" and stored(runtime, fourth.id)
        wait = (after.next_sync_at - before).total_seconds()
        assert source_health.BACKOFF_MIN * 0.8 - 1 <= wait <= source_health.BACKOFF_MAX * 1.2
        # The connections that went to ERROR first are held too when they retry.
        run_sync(runtime, connection_pk=conns[0].id, epoch=conns[0].grant_epoch)
        assert reload(runtime, conns[0].id).sync_status == "RETRIEVED"
    finally:
        sandbox.reset(CLINIC)
    # The source recovers: good syncs clear its failing connections, and it is ok again.
    for conn in conns[:2]:
        assert (
            run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch).status == "RETRIEVED"
        )
    source_health.flush(runtime)
    seen = health(client, member)
    assert seen["failingConnections"] == 2
    assert seen["status"] == "ok" and seen["degradedSince"] is None
