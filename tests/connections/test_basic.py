"""BASIC sources: createConnection with portal credentials, sync, disconnect, delete."""

import json

from sqlalchemy import func, select

from tests.conftest import MemberCtx
from tests.sync.helpers import codes, reload, stored
from tether.connections.deletion import run_delete
from tether.runtime import Runtime
from tether.sealed import connection_binding
from tether.store.models import Connection
from tether.sync.run import run_sync

PHARMACY = "sandbox-pharmacy"
GOOD = {"connectionId": PHARMACY, "username": "pharmacy-1", "password": "sandbox-password"}


def _only(runtime: Runtime) -> Connection:
    with runtime.db.read() as session:
        return session.scalars(select(Connection)).one()


def test_create_sync_disconnect_delete(client, member: MemberCtx, runtime: Runtime) -> None:
    created = client.post("/v1/connections", json=GOOD, headers=member.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["id"], body["category"], body["type"]) == (PHARMACY, "BASIC", "PHARMACY")
    assert (body["status"], body["syncStatus"]) == ("CONNECTED", "PENDING")
    conn = _only(runtime)
    assert conn.patient_id == "pharmacy-1" and conn.access_token is None
    assert conn.credentials and "sandbox-password" not in conn.credentials
    sealed = json.loads(
        runtime.vault.decrypt(conn.credentials, binding=connection_binding(conn.id, "credentials"))
    )
    assert sealed == {"username": "pharmacy-1", "password": "sandbox-password"}

    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED", report.errors
    assert stored(runtime, conn.id)["Patient"] == 1
    assert stored(runtime, conn.id).get("MedicationRequest", 0) > 0

    gone = client.post(f"/v1/connections/{PHARMACY}/disconnect", headers=member.headers)
    assert gone.json()["status"] == "DISCONNECTED"
    assert reload(runtime, conn.id).credentials is None
    assert stored(runtime, conn.id)  # data kept

    again = client.post("/v1/connections", json=GOOD, headers=member.headers)
    assert again.status_code == 201 and again.json()["status"] == "CONNECTED"
    assert client.delete(f"/v1/connections/{PHARMACY}", headers=member.headers).status_code == 202
    after = reload(runtime, conn.id)
    assert after.credentials is None
    run_delete(runtime, connection_pk=conn.id, epoch=after.grant_epoch)
    assert reload(runtime, conn.id).sync_status == "DATA_DELETED"
    assert stored(runtime, conn.id) == {}


def test_wrong_credentials_store_nothing(client, member: MemberCtx, runtime: Runtime) -> None:
    bad = client.post("/v1/connections", json={**GOOD, "password": "guess"}, headers=member.headers)
    assert bad.status_code == 400
    assert bad.json()["code"] == "BAD_CREDENTIALS"
    assert "guess" not in bad.text
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Connection)) == 0
    missing = client.post(
        "/v1/connections", json={"connectionId": PHARMACY, "username": "x"}, headers=member.headers
    )
    assert missing.status_code == 422


def test_categories_are_not_mixed(client, member: MemberCtx) -> None:
    oauth = client.post(
        "/v1/connections", json={**GOOD, "connectionId": "sandbox-clinic"}, headers=member.headers
    )
    assert oauth.status_code == 409 and oauth.json()["code"] == "WRONG_CATEGORY"
    url = client.post(f"/v1/connections/{PHARMACY}/oauth-url", headers=member.headers)
    assert url.status_code == 409 and url.json()["code"] == "WRONG_CATEGORY"


def test_changed_portal_password_expires_the_connection(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    client.post("/v1/connections", json=GOOD, headers=member.headers)
    conn = _only(runtime)
    with runtime.db.write() as session:  # the member changed their password at the portal
        row = session.get(Connection, conn.id)
        assert row is not None
        row.credentials = runtime.vault.encrypt(
            json.dumps({"username": "pharmacy-1", "password": "old"}),
            binding=connection_binding(conn.id, "credentials"),
        )
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "ERROR"
    after = reload(runtime, conn.id)
    assert after.status == "EXPIRED" and after.credentials is None
    assert codes(after)[0] == "AUTHORIZATION_EXPIRED"


def test_password_grant_sources(client, member: MemberCtx, runtime: Runtime, tmp_path) -> None:
    """A BASIC source whose credentials go to its token endpoint (RFC 6749 §4.3)."""
    from tether.connections.retirement import import_directory

    path = tmp_path / "pw.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "sandbox-pharmacy-oauth",
                    "name": "Sandbox Pharmacy (password grant)",
                    "category": "BASIC",
                    "type": "PHARMACY",
                    "fhir_base_url": "{sandbox}/sandbox-pharmacy/fhir",
                    "basic_auth": "password_grant",
                    "oauth": {"client_id": "tether", "client_secret": "sandbox-secret"},
                }
            ]
        )
    )
    import_directory(runtime, path)
    body = {**GOOD, "connectionId": "sandbox-pharmacy-oauth"}
    wrong = client.post(
        "/v1/connections", json={**body, "password": "guess"}, headers=member.headers
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "BAD_CREDENTIALS"
    made = client.post("/v1/connections", json=body, headers=member.headers)
    assert made.status_code == 201, made.text
    conn = _only(runtime)
    assert conn.access_token is not None and conn.refresh_token is not None  # OAuth tokens
    assert conn.patient_id == "pharmacy-1"
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED", report.errors
    assert stored(runtime, conn.id)["Patient"] == 1
