"""The whole connection workflow through SDK-shaped calls, against the sandbox."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import MemberCtx
from tests.graphql.sdk_wire import SdkClient, client_key
from tether.connections.deletion import run_delete
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.store.models import Connection
from tether.sync.run import run_sync
from tether.testing.flow import authorize_in_browser

CLINIC = "sandbox-clinic"


def _grant(runtime: Runtime, member: MemberCtx) -> tuple[int, int]:
    with runtime.db.read() as session:
        conn = session.scalars(
            select(Connection).where(
                Connection.member_id == member.member_id, Connection.data_source_id == CLINIC
            )
        ).one()
        return conn.id, conn.grant_epoch


def _establish(sdk: SdkClient) -> None:
    answer = sdk.call("getOauthUrl", connectionId=CLINIC)
    assert answer.data is not None
    with httpx.Client(timeout=30) as browser:
        flow = authorize_in_browser(
            browser, answer.data["getOauthUrl"]["redirectUrl"], patient="clinic-1"
        )
    assert flow.status_code == "success"


def _view(sdk: SdkClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one connection, and its subscription resource (keyed by service_slug)."""
    answer = sdk.connections()
    assert answer.data is not None and not answer.errors
    (connection,) = answer.data["getMemberConnections"]
    resources = {
        entry["resource"]["service_slug"]: entry["resource"]
        for entry in answer.data["subscription_subscription"]["entry"]
    }
    assert set(resources) == {connection["id"]}
    resource = resources[connection["id"]]
    (status,) = resource["subscriptionStatus"]
    (extension,) = [e for e in status["extension"] if e["id"] == "data-connection-status"]
    assert extension["valueString"] == connection["syncStatus"]
    return connection, status


def test_establish_view_errors_disconnect_reestablish_delete(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    sdk = SdkClient(client, client_key(member.tenant.tenant_id))
    assert sdk.initialize().data == {"initSdk": None}
    assert not sdk.authenticate_token(member.token).errors

    # Establish: getOauthUrl, then the member's browser through the sandbox's consent.
    _establish(sdk)
    connection, status = _view(sdk)
    assert connection["id"] == CLINIC and connection["isDirect"] is True
    assert (connection["status"], connection["syncStatus"]) == ("CONNECTED", "PENDING")
    assert connection["lastSynced"] is None and status["error"] == []

    # A sync that the source partly refuses: the errors travel in subscription_subscription.
    sandbox.set_knobs(CLINIC, {"forbidden_types": ["Observation"]})
    try:
        pk, epoch = _grant(runtime, member)
        report = run_sync(runtime, connection_pk=pk, epoch=epoch)
    finally:
        sandbox.reset(CLINIC)
    assert report is not None
    connection, status = _view(sdk)
    assert connection["syncStatus"] == "RETRIEVED" and connection["lastSynced"]
    codes = [coding["code"] for error in status["error"] for coding in error["coding"]]
    assert codes == ["PARTIAL_RETRIEVAL", "ACCESS_FORBIDDEN"]
    assert "Observation" in status["error"][0]["text"]
    assert status["error"][0]["coding"][0]["system"] == "urn:tether:sync-error"

    # The access token is refreshed the SDK's way; the workflow goes on with the new one.
    assert not sdk.refresh().errors

    disconnected = sdk.call("disconnectConnection", connectionId=CLINIC)
    assert disconnected.data is not None
    assert disconnected.data["disconnectConnection"]["status"] == "DISCONNECTED"
    connection, _ = _view(sdk)
    assert connection["status"] == "DISCONNECTED"
    assert connection["statusUpdated"] == disconnected.data["disconnectConnection"]["statusUpdated"]

    # Re-establish with the same connectionId.
    _establish(sdk)
    connection, status = _view(sdk)
    assert (connection["status"], connection["syncStatus"]) == ("CONNECTED", "PENDING")
    assert status["error"] == []

    deleted = sdk.call("deleteConnection", connectionId=CLINIC)
    assert deleted.data is not None and deleted.data["deleteConnection"]["status"] == "DELETED"
    connection, _ = _view(sdk)
    assert (connection["status"], connection["syncStatus"]) == ("DELETED", "DELETING")
    pk, epoch = _grant(runtime, member)
    assert run_delete(runtime, connection_pk=pk, epoch=epoch) >= 1  # the asynchronous part
    connection, status = _view(sdk)
    assert (connection["status"], connection["syncStatus"]) == ("DELETED", "DATA_DELETED")
    # And once its data is gone it can be established again.
    _establish(sdk)
    assert _view(sdk)[0]["status"] == "CONNECTED"
