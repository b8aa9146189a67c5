"""Events and webhooks end to end: the workflow's events reach a real receiver on loopback,
signed as Standard Webhooks says (checked with its reference library), at least once, in order,
through failures, timeouts, 410s, secret rotation and a killed worker."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import MemberCtx, TenantCtx, process_env
from tests.sync.helpers import connected, reload
from tests.webhooks.receiver import Received, Receiver, start_receiver
from tether import events
from tether.connections import lifecycle
from tether.domain import Status
from tether.jobs import EmbeddedWorker, Jobs
from tether.runtime import Runtime
from tether.store.models import Connection, Event, WebhookDelivery, WebhookEndpoint, utcnow

CLINIC = "sandbox-clinic"


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def register(client: httpx.Client, tenant: TenantCtx, url: str, **body: object) -> dict:
    answer = client.post("/v1/webhook-endpoints", json={"url": url, **body}, headers=tenant.headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def emit(
    runtime: Runtime, tenant: TenantCtx, n: int, type: str = events.SYNC_COMPLETED
) -> list[str]:
    """Commit ``n`` events for the tenant, one transaction each; their ids in commit order."""
    ids = []
    for i in range(n):
        with runtime.db.write() as session:
            event = events.record(
                session, tenant_id=tenant.tenant_id, type=type, data={"n": i}, now=runtime.clock()
            )
            ids.append(event)
    return ids


def test_the_workflow_sends_its_events_in_order_signed_and_verifiable(
    client: httpx.Client,
    tenant: TenantCtx,
    member: MemberCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
) -> None:
    endpoint = register(client, tenant, receiver.url, description="app backend")
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    wait_for(lambda: reload(runtime, conn.id).sync_status == "RETRIEVED")
    client.post(f"/v1/connections/{CLINIC}/disconnect", headers=member.headers)
    connected(client, member, runtime, CLINIC, "clinic-1")  # re-established
    wait_for(lambda: reload(runtime, conn.id).sync_status == "RETRIEVED")
    client.delete(f"/v1/connections/{CLINIC}", headers=member.headers)
    wait_for(lambda: reload(runtime, conn.id).sync_status == "DATA_DELETED")
    expected = [
        "connection.connected",
        "sync.completed",
        "connection.disconnected",
        "connection.connected",
        "sync.completed",
        "connection.deleted",
        "connection.data_deleted",
    ]
    got = receiver.wait_for(len(expected))
    time.sleep(0.3)  # nothing more comes
    assert [r.type for r in receiver.received] == expected
    for item in got:
        verified = receiver.verify(secret, item)  # the reference verifier accepts it
        assert verified["data"]["eventId"] == item.id
        data = item.payload["data"]
        assert data["tenantId"] == tenant.tenant_id and data["memberId"] == member.member_id
        assert data["externalId"] == "alice" and data["connectionId"] == CLINIC
        assert "token" not in item.body.decode().lower()  # no tokens, ever
    first_sync = got[1].payload["data"]
    assert first_sync["trigger"] == "initial" and first_sync["syncStatus"] == "RETRIEVED"
    assert first_sync["resources"]["Patient"] == {"added": 1, "updated": 0}
    assert got[3].payload["data"]["previousStatus"] == "DISCONNECTED"
    assert got[4].payload["data"]["trigger"] == "re-established"
    # A tampered body or another secret fails the same verifier.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(got[0].body + b" ", got[0].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(got[0].body, got[0].headers)
    # The event log says the same, oldest first, and pages.
    log = client.get("/v1/events", params={"limit": 4}, headers=tenant.headers).json()
    assert [e["type"] for e in log["items"]] == expected[:4]
    rest = client.get(
        "/v1/events", params={"after": log["nextAfter"]}, headers=tenant.headers
    ).json()
    assert [e["type"] for e in rest["items"]] == expected[4:] and rest["nextAfter"] is None
    assert [e["data"]["eventId"] for e in log["items"] + rest["items"]] == [r.id for r in got]
    only = client.get(
        "/v1/events", params={"type": "sync.completed"}, headers=tenant.headers
    ).json()
    assert [e["type"] for e in only["items"]] == ["sync.completed"] * 2
    # Every delivery is recorded with its attempt.
    deliveries = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=tenant.headers
    ).json()["items"]
    assert len(deliveries) == 7 and {d["state"] for d in deliveries} == {"delivered"}
    assert all(d["attempts"] == 1 and d["history"][0]["status"] == 200 for d in deliveries)


def test_a_failing_receiver_gets_the_event_again_with_the_same_id_and_order_is_kept(
    client: httpx.Client,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
    quick_retries: None,
) -> None:
    endpoint = register(client, tenant, receiver.url)
    receiver.script = [500, 500]
    ids = emit(runtime, tenant, 3)
    receiver.wait_for(3)
    seen = [(r.id, r.answered) for r in receiver.received]
    assert seen == [(ids[0], 500), (ids[0], 500), (ids[0], 200), (ids[1], 200), (ids[2], 200)]
    for item in receiver.received:
        receiver.verify(endpoint["secret"], item)
    first = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=tenant.headers
    ).json()["items"][-1]
    assert first["eventId"] == ids[0] and first["attempts"] == 3
    assert [a["status"] for a in first["history"]] == [500, 500, 200]
    assert first["history"][0]["error"] == "HTTP 500"


def test_a_receiver_down_for_a_while_gets_everything_once_it_is_back(
    client: httpx.Client,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    quick_retries: None,
) -> None:
    probe = start_receiver()
    port = int(probe.url.split(":")[2].split("/")[0])
    url = probe.url
    probe.close()  # nothing listens there now
    endpoint = register(client, tenant, url)
    ids = emit(runtime, tenant, 2)
    wait_for(lambda: _attempts(runtime, endpoint["id"]) >= 2)
    with runtime.db.read() as session:
        head = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.event_pk)).first()
        assert head is not None and head.last_error == "could not connect"
    back = start_receiver(port)
    try:
        got = back.wait_for(2)
        assert [r.id for r in got] == ids
    finally:
        back.close()


def test_a_hanging_receiver_times_out_and_is_retried(
    client: httpx.Client,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
    quick_retries: None,
) -> None:
    def hang() -> int:
        time.sleep(3.0)  # longer than webhook_timeout (2 s here)
        return 504

    receiver.script = [hang]
    endpoint = register(client, tenant, receiver.url)
    (event_id,) = emit(runtime, tenant, 1)
    got = receiver.wait_for(1, timeout=30)
    assert got[0].id == event_id

    def delivery() -> dict:
        return client.get(
            f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=tenant.headers
        ).json()["items"][0]

    # The receiver has answered; the worker records the attempt once the answer reaches it.
    wait_for(lambda: delivery()["state"] == "delivered")
    history = delivery()["history"]
    assert history[0]["error"] == "timed out" and history[0]["status"] is None
    assert 1900 <= history[0]["durationMs"] < 3000
    assert history[-1]["status"] == 200


def test_410_gone_disables_the_endpoint_and_an_event_says_so(
    client: httpx.Client,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
) -> None:
    watcher = start_receiver()
    try:
        gone = register(client, tenant, receiver.url)
        watch = register(client, tenant, watcher.url, events=["webhook_endpoint.disabled"])
        receiver.script = [410]
        emit(runtime, tenant, 2)
        notice = watcher.wait_for(1)[0]
        watcher.verify(watch["secret"], notice)
        assert notice.payload["data"]["endpointId"] == gone["id"]
        assert "410" in notice.payload["data"]["reason"]
        shown = client.get(f"/v1/webhook-endpoints/{gone['id']}", headers=tenant.headers).json()
        assert shown["disabled"] is True and "410" in shown["disabledReason"]
        time.sleep(0.3)
        assert len(receiver.received) == 1  # nothing more went to the disabled endpoint
        # Enabled again, its line resumes where it stopped, in order.
        client.patch(
            f"/v1/webhook-endpoints/{gone['id']}", json={"disabled": False}, headers=tenant.headers
        )
        assert len(receiver.wait_for(2)) == 2
    finally:
        watcher.close()


def test_429_retry_after_is_honoured(
    client: httpx.Client,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
    quick_retries: None,
) -> None:
    receiver.script = [429]
    receiver.headers_out = {"Retry-After": "2"}
    register(client, tenant, receiver.url)
    emit(runtime, tenant, 1)
    got = receiver.wait_for(1, timeout=20)
    waited = got[0].at - receiver.received[0].at
    assert waited >= 1.9  # Retry-After (2 s) beat the schedule's 0.2 s


def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(
    client: httpx.Client,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
) -> None:
    endpoint = register(client, tenant, receiver.url)
    rotated = client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=tenant.headers
    ).json()
    assert rotated["secret"] != endpoint["secret"] and rotated["previousSecretUntil"]
    emit(runtime, tenant, 1)
    item = receiver.wait_for(1)[0]
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    receiver.verify(endpoint["secret"], item)  # receivers not yet switched still verify
    receiver.verify(rotated["secret"], item)
    # After the overlap only the new secret signs.
    runtime.clock = lambda: utcnow() + timedelta(hours=25)
    (second,) = emit(runtime, tenant, 1)
    # Delivery is at least once: a repeat of the first event may come in between.
    later = _delivery_of(receiver, second)
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(
            later.body, {**later.headers, "webhook-timestamp": str(int(time.time()))}
        )


def _delivery_of(receiver: Receiver, event_id: str, timeout: float = 30.0) -> Received:
    """The first delivery of ``event_id`` (its ``webhook-id``) to ``receiver``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [i for i in receiver.delivered() if i.headers["webhook-id"] == event_id]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"{event_id} was not delivered"
        time.sleep(0.05)


def test_a_worker_killed_mid_delivery_delivers_later_with_the_same_id(
    client: httpx.Client, tenant: TenantCtx, runtime: Runtime, receiver: Receiver
) -> None:
    """The crash is simulated where it matters: the attempt went out and no outcome was ever
    written (the worker's process is gone; its lease stays until it expires)."""
    endpoint = register(client, tenant, receiver.url)
    (event_id,) = emit(runtime, tenant, 1)
    env = process_env(
        runtime.settings, TETHER_WEBHOOKS_ALLOW_PRIVATE="true", TETHER_WEBHOOK_TIMEOUT="2"
    )
    arrived = []

    def hold() -> int:
        arrived.append(time.time())
        time.sleep(1.5)  # the worker is killed while it waits for this answer
        return 200

    receiver.script = [hold]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tether",
            "worker",
            "--threads",
            "1",
            "--sweep-interval",
            "3600",
            "--poll-interval",
            "0.1",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: bool(arrived), timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with runtime.db.read() as session:
        left = session.scalars(select(WebhookDelivery)).one()
        assert left.state == "pending" and left.attempts == 0  # no outcome was written
    assert isinstance(runtime.jobs, Jobs)
    runtime.jobs.huey.flush()
    assert runtime.jobs.run_sweeps()["webhook-deliveries"] == 0  # the dead worker's lease holds
    runtime.clock = lambda: utcnow() + timedelta(minutes=2)
    assert runtime.jobs.run_sweeps()["webhook-deliveries"] == 1
    worker = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)
    worker.start()
    try:
        receiver.wait_for(2)  # the killed attempt's request was answered too
    finally:
        worker.stop()
    assert [r.id for r in receiver.received] == [event_id, event_id]
    for item in receiver.received:
        receiver.verify(endpoint["secret"], item)


def test_events_are_written_with_the_change_or_not_at_all(
    runtime: Runtime, tenant: TenantCtx, member: MemberCtx, client: httpx.Client, receiver: Receiver
) -> None:
    register(client, tenant, receiver.url)
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    before = _count(runtime, Event), _count(runtime, WebhookDelivery)

    def failing_change() -> None:
        with runtime.db.write() as session:
            row = session.get(Connection, conn.id)
            assert row is not None
            lifecycle.transition(
                session,
                row,
                Status.DISCONNECTED,
                action="connection.disconnected",
                actor="t",
                now=utcnow(),
            )
            session.flush()
            raise RuntimeError("the change fails after its event was written")

    with pytest.raises(RuntimeError):
        failing_change()
    assert (_count(runtime, Event), _count(runtime, WebhookDelivery)) == before
    assert reload(runtime, conn.id).status == "CONNECTED"


def _count(runtime: Runtime, model: type) -> int:
    with runtime.db.read() as session:
        return len(session.scalars(select(model)).all())


def _attempts(runtime: Runtime, endpoint_id: str) -> int:
    with runtime.db.read() as session:
        rows = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        ).all()
        return sum(r.attempts for r in rows)


def test_the_secret_is_sealed_in_the_database(
    client: httpx.Client, tenant: TenantCtx, runtime: Runtime, receiver: Receiver
) -> None:
    endpoint = register(client, tenant, receiver.url)
    with runtime.db.read() as session:
        row = session.get(WebhookEndpoint, endpoint["id"])
        assert row is not None and endpoint["secret"] not in row.secret
    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tenant.headers).json()
    assert "secret" not in shown


def test_a_delivery_that_fails_every_attempt_is_failed_and_the_line_moves_on(
    client: httpx.Client,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
    quick_retries: None,
) -> None:
    from tether.webhooks.delivery import MAX_ATTEMPTS

    endpoint = register(client, tenant, receiver.url)
    receiver.script = [500] * MAX_ATTEMPTS
    ids = emit(runtime, tenant, 2)
    got = receiver.wait_for(1, timeout=60)
    assert [r.id for r in got] == [ids[1]]
    assert [r.id for r in receiver.received] == [ids[0]] * MAX_ATTEMPTS + [ids[1]]
    failed = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries",
        params={"state": "failed"},
        headers=tenant.headers,
    ).json()["items"]
    assert [d["eventId"] for d in failed] == [ids[0]] and failed[0]["attempts"] == MAX_ATTEMPTS
    assert failed[0]["nextAttempt"] is None

    # A success ends the failing streak: the endpoint is healthy again, once the worker has
    # recorded the answer the receiver gave.
    def shown() -> dict:
        return client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tenant.headers).json()

    wait_for(lambda: shown()["failingSince"] is None)
    assert shown()["disabled"] is False


def test_an_endpoint_failing_for_five_days_is_disabled(
    client: httpx.Client,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
) -> None:
    endpoint = register(client, tenant, receiver.url)
    with runtime.db.write() as session:
        row = session.get(WebhookEndpoint, endpoint["id"])
        assert row is not None
        row.failing_since = utcnow() - timedelta(days=5, minutes=1)
    receiver.default = 503
    emit(runtime, tenant, 1)
    wait_for(lambda: _disabled(runtime, endpoint["id"]))
    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tenant.headers).json()
    assert shown["disabledReason"] == "failing for 5 days"
    notices = client.get(
        "/v1/events", params={"type": "webhook_endpoint.disabled"}, headers=tenant.headers
    ).json()["items"]
    assert [n["data"]["endpointId"] for n in notices] == [endpoint["id"]]
    assert len(receiver.received) == 1


def _disabled(runtime: Runtime, endpoint_id: str) -> bool:
    with runtime.db.read() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        return row is not None and row.disabled_at is not None


def test_a_hanging_endpoint_does_not_hold_up_another_tenants_deliveries(
    client: httpx.Client,
    tenant: TenantCtx,
    other_tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
    quick_retries: None,
) -> None:
    released: list[float] = []

    def hang() -> int:
        time.sleep(2.5)  # past the 2 s timeout
        released.append(time.time())
        return 200

    slow = start_receiver()
    slow.default = 200
    slow.script = [hang]
    try:
        register(client, tenant, slow.url)
        register(client, other_tenant, receiver.url)
        emit(runtime, tenant, 1)
        wait_for(lambda: bool(slow.received))  # the slow endpoint is being waited on
        emit(runtime, other_tenant, 1)
        fast = receiver.wait_for(1)[0]
        assert not released or fast.at < released[0]  # delivered while the other one hung
    finally:
        slow.close()
