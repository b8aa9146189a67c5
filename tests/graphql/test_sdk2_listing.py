"""The SDK 2.0's connection list, built from ``subscriptions`` the way the SDK builds it, holds
every connection of the member in every state, exactly as REST shows it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import MemberCtx
from tests.graphql.sdk_wire import SdkClient, client_key
from tests.graphql.sdk_wire2 import sdk2, sdk_connections
from tests.sync.helpers import connected, reload
from tether.connections.deletion import run_delete
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.store.models import Connection
from tether.sync.run import run_sync

CLINIC, INSURER, LAB, PHARMACY = (
    "sandbox-clinic",
    "sandbox-insurer",
    "sandbox-lab",
    "sandbox-pharmacy",
)
FIELDS = ("id", "name", "category", "type", "status", "syncStatus", "created", "statusUpdated")


def _listing(sdk: SdkClient) -> dict[str, dict[str, Any]]:
    answer = sdk.call("getMemberConnections")
    assert answer.data is not None and not answer.errors
    connections = sdk_connections(answer.data)
    # Nothing was dropped: one connection per entry.
    assert len(connections) == len(answer.data["subscriptions"]["entry"])
    return {c["id"]: c for c in connections}


def _codes(connection: dict[str, Any]) -> list[str]:
    return [coding["code"] for error in connection["syncError"] for coding in error["coding"]]


def _matches_rest(
    listed: dict[str, dict[str, Any]], client: httpx.Client, member: MemberCtx
) -> None:
    """Each connection as the SDK sees it is REST's, field for field (sync errors included)."""
    rest = {c["id"]: c for c in client.get("/v1/connections", headers=member.headers).json()}
    assert set(listed) == set(rest)
    for connection_id, connection in listed.items():
        expected = rest[connection_id]
        assert {k: connection[k] for k in FIELDS} == {k: expected[k] for k in FIELDS}
        assert connection["lastSynced"] == expected["lastSynced"]
        errors = [
            {"text": e["text"], "codes": [c["code"] for c in e["coding"]]}
            for e in connection["syncError"]
        ]
        assert errors == [
            {"text": e["text"], "codes": [c["code"] for c in e["coding"]]}
            for e in expected["syncErrors"]
        ]


def _state(connection: dict[str, Any]) -> tuple[str, str, str, str, bool]:
    synced = connection["lastSynced"] is not None
    return (
        connection["status"],
        connection["syncStatus"],
        connection["category"],
        connection["type"],
        synced,
    )


def test_every_state_reaches_the_sdk(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    sdk = sdk2(client, client_key(member.tenant.tenant_id))
    assert sdk.initialize().data == {"initSdk": None}
    assert not sdk.authenticate_token(member.token).errors

    # EXPIRED: synced once, then the source revoked the grant and the next sync found out.
    clinic = connected(client, member, runtime, CLINIC, "clinic-1")
    ok = run_sync(runtime, connection_pk=clinic.id, epoch=clinic.grant_epoch)
    assert ok is not None and ok.status == "RETRIEVED", ok.errors
    sandbox.revoke_all(CLINIC)
    run_sync(runtime, connection_pk=clinic.id, epoch=clinic.grant_epoch)
    # A sync ERROR with its sync errors, the authorization still CONNECTED.
    insurer = connected(client, member, runtime, INSURER, "insurer-1")
    sandbox.set_knobs(INSURER, {"rate_503": 1.0, "retry_after": 0})
    try:
        run_sync(runtime, connection_pk=insurer.id, epoch=insurer.grant_epoch)
    finally:
        sandbox.reset(INSURER)
    # DISCONNECTED after a good sync (its data and lastSynced stay).
    lab = connected(client, member, runtime, LAB, "lab-1")
    assert run_sync(runtime, connection_pk=lab.id, epoch=lab.grant_epoch) is not None
    gone = sdk.call("disconnectConnection", connectionId=LAB)
    assert gone.data is not None and gone.data["disconnectConnection"]["status"] == "DISCONNECTED"
    # A BASIC source, connected and synced.
    made = sdk.call(
        "createConnection",
        connectionId=PHARMACY,
        username="pharmacy-1",
        password="sandbox-password",
    )
    assert made.data is not None and not made.errors
    with runtime.db.read() as session:
        pharmacy = session.scalars(
            select(Connection).where(
                Connection.member_id == member.member_id, Connection.data_source_id == PHARMACY
            )
        ).one()
    assert run_sync(runtime, connection_pk=pharmacy.id, epoch=pharmacy.grant_epoch) is not None

    listed = _listing(sdk)
    assert {cid: _state(c) for cid, c in listed.items()} == {
        CLINIC: ("EXPIRED", "ERROR", "OAUTH", "CLINICAL", True),
        INSURER: ("CONNECTED", "ERROR", "OAUTH", "INSURANCE", False),
        LAB: ("DISCONNECTED", "RETRIEVED", "OAUTH", "LAB", True),
        PHARMACY: ("CONNECTED", "RETRIEVED", "BASIC", "PHARMACY", True),
    }
    assert _codes(listed[CLINIC])[0] == "AUTHORIZATION_EXPIRED"
    assert _codes(listed[INSURER]) == ["SOURCE_UNAVAILABLE"]
    assert listed[INSURER]["syncError"][0]["text"]
    assert _codes(listed[LAB]) == [] and _codes(listed[PHARMACY]) == []
    assert listed[PHARMACY]["created"] == made.data["createConnection"]["created"]
    assert listed[LAB]["statusUpdated"] == gone.data["disconnectConnection"]["statusUpdated"]
    _matches_rest(listed, client, member)

    # DELETED: DELETING at once, DATA_DELETED when the asynchronous part is done.
    deleted = sdk.call("deleteConnection", connectionId=LAB)
    assert deleted.data is not None and deleted.data["deleteConnection"]["status"] == "DELETED"
    assert _state(_listing(sdk)[LAB])[:2] == ("DELETED", "DELETING")
    after = reload(runtime, lab.id)
    assert run_delete(runtime, connection_pk=lab.id, epoch=after.grant_epoch) >= 1
    listed = _listing(sdk)
    assert _state(listed[LAB])[:2] == ("DELETED", "DATA_DELETED")
    assert {cid: c["status"] for cid, c in listed.items() if cid != LAB} == {
        CLINIC: "EXPIRED",
        INSURER: "CONNECTED",
        PHARMACY: "CONNECTED",
    }
    _matches_rest(listed, client, member)
