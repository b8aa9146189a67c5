"""Disconnect and delete: revocation, fencing, asynchronous batched deletion, re-establish."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

from sqlalchemy import func, select

from tests.conftest import MemberCtx, make_member
from tests.sync.helpers import connected, reload, stored
from tether.connections.deletion import claim_stale_deletes, run_delete
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.store.models import AuditEvent, FhirResource, utcnow
from tether.sync.checks import stamped
from tether.sync.fenced_writes import upsert_resources
from tether.sync.run import run_sync
from tether.sync.scheduling import claim_due_syncs
from tether.testing.flow import connect

CLINIC, LAB = "sandbox-clinic", "sandbox-lab"


def test_disconnect_keeps_data_revokes_and_stops_retrieval(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    counts = stored(runtime, conn.id)
    revocations = sandbox.counters(CLINIC).revocations
    response = client.post(f"/v1/connections/{CLINIC}/disconnect", headers=member.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "DISCONNECTED" and body["statusUpdated"]
    assert sandbox.counters(CLINIC).revocations - revocations == 2  # refresh + access token
    after = reload(runtime, conn.id)
    assert after.access_token is None and after.refresh_token is None
    assert after.grant_epoch == conn.grant_epoch + 1 and after.next_sync_at is None
    assert stored(runtime, conn.id) == counts  # data stays
    bundle = client.get("/v1/fhir/Patient", headers=member.headers).json()
    assert len(bundle["entry"]) == 1  # and stays readable
    # No retrieval afterwards: the old job is fenced, and nothing is due.
    assert run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch) is None
    assert conn.id not in [due.pk for due in claim_due_syncs(runtime)]
    again = client.post(f"/v1/connections/{CLINIC}/disconnect", headers=member.headers)
    assert again.status_code == 200 and again.json()["status"] == "DISCONNECTED"
    with runtime.db.read() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [e.action for e in events][-2:] == ["connection.disconnected", "connection.revocation"]
    assert events[-1].detail == {"outcome": "revoked"}

    # Re-establish: CONNECTED again in a new epoch, the earlier data kept.
    assert connect(client, member.headers, CLINIC, patient="clinic-1").status_code == "success"
    back = reload(runtime, conn.id)
    assert back.status == "CONNECTED" and back.grant_epoch == conn.grant_epoch + 2
    assert stored(runtime, conn.id) == counts


def test_a_running_sync_writes_nothing_after_disconnect(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-large")
    sandbox.set_knobs(CLINIC, {"latency_ms": 30})
    results: list[object] = []
    worker = threading.Thread(
        target=lambda: results.append(
            run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, page_size=50)
        )
    )
    worker.start()
    deadline = time.monotonic() + 30
    while not stored(runtime, conn.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored(runtime, conn.id), "the sync never started writing"
    client.post(f"/v1/connections/{CLINIC}/disconnect", headers=member.headers)
    at_disconnect = sum(stored(runtime, conn.id).values())
    worker.join(60)
    sandbox.reset(CLINIC)
    assert results == [None]  # the sync noticed and stopped
    assert sum(stored(runtime, conn.id).values()) == at_disconnect
    after = reload(runtime, conn.id)
    assert after.status == "DISCONNECTED" and after.sync_status in ("RETRIEVED", "PENDING")


def test_delete_is_asynchronous_and_touches_nothing_else(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    clinic = connected(client, member, runtime, CLINIC, "clinic-1")
    lab = connected(client, member, runtime, LAB, "lab-1")
    other = make_member(runtime, member.tenant, "carol")
    theirs = connected(client, other, runtime, CLINIC, "clinic-1")
    for conn in (clinic, lab, theirs):
        run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    lab_counts, their_counts = stored(runtime, lab.id), stored(runtime, theirs.id)

    response = client.delete(f"/v1/connections/{CLINIC}", headers=member.headers)
    assert response.status_code == 202
    assert response.json()["status"] == "DELETED"
    assert response.json()["syncStatus"] == "DELETING"
    assert stored(runtime, clinic.id)  # not yet: asynchronous
    blocked = client.post(f"/v1/connections/{CLINIC}/oauth-url", headers=member.headers)
    assert blocked.status_code == 409 and blocked.json()["code"] == "DELETION_IN_PROGRESS"
    assert client.delete(f"/v1/connections/{CLINIC}", headers=member.headers).status_code == 202

    epoch = reload(runtime, clinic.id).grant_epoch
    deleted = run_delete(runtime, connection_pk=clinic.id, epoch=epoch, batch=7)
    assert deleted > 7  # several batches
    view = client.get(f"/v1/connections/{CLINIC}", headers=member.headers).json()
    assert (view["status"], view["syncStatus"]) == ("DELETED", "DATA_DELETED")
    assert view["resourceCounts"] == {}
    assert stored(runtime, clinic.id) == {}
    assert stored(runtime, lab.id) == lab_counts
    assert stored(runtime, theirs.id) == their_counts
    assert run_delete(runtime, connection_pk=clinic.id, epoch=epoch) == 0  # idempotent

    # Re-establishing starts a fresh connection with a full sync.
    assert connect(client, member.headers, CLINIC, patient="clinic-1").status_code == "success"
    fresh = reload(runtime, clinic.id)
    assert fresh.status == "CONNECTED" and fresh.sync_cursor == {}
    assert fresh.created_at > clinic.created_at
    report = run_sync(runtime, connection_pk=fresh.id, epoch=fresh.grant_epoch)
    assert report is not None and report.written == sum(stored(runtime, clinic.id).values())


def test_lost_delete_message_is_redriven_by_the_sweeper(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    runtime.jobs = None  # the delete message is lost: never reaches the queue
    client.delete(f"/v1/connections/{CLINIC}", headers=member.headers)
    assert claim_stale_deletes(runtime) == []  # its lease is still fresh
    runtime.clock = lambda: utcnow() + timedelta(minutes=5)
    [(pk, epoch)] = claim_stale_deletes(runtime)
    assert claim_stale_deletes(runtime) == []  # claimed once
    run_delete(runtime, connection_pk=pk, epoch=epoch)
    assert reload(runtime, conn.id).sync_status == "DATA_DELETED"


KILLABLE_DELETE = """
import os, sys, time
from tether.bootstrap import build_runtime
from tether.settings import Settings
from tether.connections.deletion import run_delete
runtime = build_runtime(Settings(), migrate=False)
def slow(n):
    print("batch", n, flush=True)
    time.sleep(0.05)
run_delete(
    runtime,
    connection_pk=int(sys.argv[1]),
    epoch=int(sys.argv[2]),
    batch=100,
    on_batch=slow,
)
print("finished", flush=True)
"""


def test_sigkill_in_the_middle_of_a_delete_is_finished_by_the_sweeper(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    keep = connected(client, member, runtime, LAB, "lab-1")
    run_sync(runtime, connection_pk=keep.id, epoch=keep.grant_epoch)
    kept = stored(runtime, keep.id)
    with runtime.db.write() as session:
        upsert_resources(
            session,
            member_id=member.member_id,
            connection_pk=conn.id,
            epoch=conn.grant_epoch,
            rows=[stamped("Observation", {"id": f"o{i}"}) for i in range(5000)],
            now=runtime.clock(),
        )
    client.delete(f"/v1/connections/{CLINIC}", headers=member.headers)
    epoch = reload(runtime, conn.id).grant_epoch
    settings = runtime.settings
    env = {
        **os.environ,
        "TETHER_DATABASE_URL": settings.resolved_database_url,
        "TETHER_SECRET_KEY": settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
        "TETHER_VAULT_KEYS": ",".join(k.get_secret_value() for k in settings.vault_keys),
        "TETHER_DATA_DIR": str(settings.data_dir),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_DELETE, str(conn.id), str(epoch)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for _ in range(3):
        assert proc.stdout.readline().startswith("batch")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    left = sum(stored(runtime, conn.id).values())
    assert 0 < left < 5000  # killed half-way
    assert reload(runtime, conn.id).sync_status == "DELETING"
    runtime.clock = lambda: utcnow() + timedelta(minutes=5)
    [(pk, redriven_epoch)] = claim_stale_deletes(runtime)
    run_delete(runtime, connection_pk=pk, epoch=redriven_epoch)
    assert stored(runtime, conn.id) == {}
    assert reload(runtime, conn.id).sync_status == "DATA_DELETED"
    assert stored(runtime, keep.id) == kept  # nothing else was removed
    with runtime.db.read() as session:
        others = session.scalar(
            select(func.count())
            .select_from(FhirResource)
            .where(FhirResource.connection_id != conn.id)
        )
    assert others == sum(kept.values())


def test_audit_trail_is_the_tenants_and_paginated(
    client, member: MemberCtx, other_tenant, runtime: Runtime
) -> None:
    connected(client, member, runtime, CLINIC, "clinic-1")
    client.post(f"/v1/connections/{CLINIC}/disconnect", headers=member.headers)
    client.delete(f"/v1/connections/{CLINIC}", headers=member.headers)
    first = client.get("/v1/audit-events?limit=2", headers=member.tenant.headers).json()
    assert [e["action"] for e in first["items"]] == [
        "connection.authorized",
        "connection.disconnected",
    ]
    rest = client.get(
        f"/v1/audit-events?after={first['nextAfter']}", headers=member.tenant.headers
    ).json()
    actions = [e["action"] for e in rest["items"]]
    assert actions[:2] == ["connection.revocation", "connection.deleted"]
    assert all(e["memberId"] == member.member_id for e in first["items"] + rest["items"])
    for event in first["items"] + rest["items"]:
        assert "token" not in str(event["detail"]).lower()
    assert client.get("/v1/audit-events", headers=other_tenant.headers).json()["items"] == []
    assert client.get("/v1/audit-events", headers=member.headers).status_code == 403


def test_disconnect_and_delete_of_unknown_or_foreign_connections(
    client, member: MemberCtx, other_member: MemberCtx, runtime: Runtime
) -> None:
    connected(client, member, runtime, CLINIC, "clinic-1")
    for method, path in (
        ("POST", f"/v1/connections/{CLINIC}/disconnect"),
        ("DELETE", f"/v1/connections/{CLINIC}"),
    ):
        assert client.request(method, path, headers=other_member.headers).status_code == 404
    assert client.delete("/v1/connections/nope", headers=member.headers).status_code == 404
    assert reload_status(runtime, member) == "CONNECTED"


def reload_status(runtime: Runtime, member: MemberCtx) -> str:
    from tether.connections.queries import require_connection

    with runtime.db.read() as session:
        return require_connection(session, member_id=member.member_id, connection_id=CLINIC).status


def test_retiring_a_source_ends_access(
    client, member: MemberCtx, runtime: Runtime, tmp_path
) -> None:
    import json

    from tether.connections.retirement import import_directory
    from tether.directory.schema import BUNDLED_DIRECTORY, load_file

    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    entries = [e.model_dump(mode="json", exclude_none=True) for e in load_file(BUNDLED_DIRECTORY)]
    for entry in entries:
        if entry["id"] == CLINIC:
            entry["retired"] = True
    path = tmp_path / "retired.json"
    path.write_text(json.dumps(entries))
    import_directory(runtime, path)
    after = reload(runtime, conn.id)
    assert after.status == "ACCESS_ENDED" and after.access_token is None
    assert stored(runtime, conn.id)  # the data stays until the member deletes it
    assert run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch) is None
    again = client.post(f"/v1/connections/{CLINIC}/oauth-url", headers=member.headers)
    assert again.status_code == 409 and again.json()["code"] == "ACCESS_ENDED"
    deleted = client.delete(f"/v1/connections/{CLINIC}", headers=member.headers)
    assert deleted.status_code == 202
