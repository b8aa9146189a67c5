"""The SDK's TenantClient and ``tether webhooks`` / ``tether events`` against a live server, and
``verify_webhook`` against the Standard Webhooks reference library in both directions."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner, Result

from tests.conftest import MemberCtx, TenantCtx
from tests.sync.helpers import connected
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_webhooks import emit
from tether.bootstrap import cli
from tether.client import (
    ConnectionManager,
    NotFoundError,
    TenantClient,
    ValidationError,
    WebhookVerificationError,
    verify_webhook,
)
from tether.jobs import EmbeddedWorker
from tether.runtime import Runtime
from tether.sync.run import run_sync
from tether.testing.live_server import LiveServer

app = cli()
CLINIC = "sandbox-clinic"


def test_the_tenant_client_manages_endpoints_and_reads_events(
    server: LiveServer,
    tenant: TenantCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    receiver: Receiver,
) -> None:
    with TenantClient(server.url, tenant.api_key) as tether:
        made = tether.create_webhook_endpoint(receiver.url, events=["sync.completed"])
        assert made.secret and made.secret.startswith("whsec_") and made.secret not in repr(made)
        assert [e.id for e in tether.list_webhook_endpoints()] == [made.id]
        assert tether.get_webhook_endpoint(made.id).secret is None
        changed = tether.update_webhook_endpoint(made.id, description="backend", events=[])
        assert changed.description == "backend" and changed.events == ()
        ids = emit(runtime, tenant, 2)
        receiver.wait_for(2)
        page = tether.list_events(type="sync.completed", limit=1)
        assert [e.id for e in page.items] == ids[:1] and page.next_after == ids[0]
        rest = tether.list_events(after=page.next_after)
        assert [e.id for e in rest.items] == ids[1:]
        delivered = tether.list_webhook_deliveries(made.id, state="delivered")
        assert sorted(d.event_id for d in delivered.items) == sorted(ids)
        assert delivered.items[0].history[0].status == 200
        rotated = tether.rotate_webhook_secret(made.id)
        assert rotated.secret and rotated.secret != made.secret
        assert rotated.previous_secret_until is not None
        assert tether.replay_webhook_endpoint(made.id, datetime.now(UTC) - timedelta(hours=1)) == 2
        assert tether.redeliver_event(ids[0]) == 1
        with pytest.raises(ValidationError):
            tether.replay_webhook_endpoint(made.id, datetime(2026, 1, 1))  # naive: refused here
        tether.delete_webhook_endpoint(made.id)
        with pytest.raises(NotFoundError):
            tether.get_webhook_endpoint(made.id)


def test_sync_history_and_the_tenants_connection_list_through_the_sdk(
    server: LiveServer,
    client: httpx.Client,
    tenant: TenantCtx,
    member: MemberCtx,
    runtime: Runtime,
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, trigger="initial")
    with ConnectionManager(server.url, member.token) as mine:
        (run,) = mine.get_sync_history(CLINIC)
    assert run.trigger == "initial" and run.outcome == "RETRIEVED"
    assert run.resources["Patient"] == {"added": 1, "updated": 0}
    with TenantClient(server.url, tenant.api_key) as tether:
        assert tether.get_sync_history(member.member_id, CLINIC) == [run]
        page = tether.list_connections(status="CONNECTED")
        assert [(c.external_id, c.connection.id) for c in page.items] == [("alice", CLINIC)]
        assert tether.list_connections(sync_error="AUTHORIZATION_EXPIRED").items == ()


def _delivery(secret: str, body: bytes, *, when: datetime | None = None) -> dict[str, str]:
    """Headers signed by the reference library."""
    moment = when or datetime.now(UTC)
    signature = Webhook(secret).sign("evt_1", moment, body.decode())
    return {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = json.dumps({"type": "sync.completed", "timestamp": "2026-12-03T00:00:00Z", "data": {}})


def test_verify_webhook_accepts_what_the_reference_library_signs() -> None:
    headers = _delivery(SECRET, BODY.encode())
    assert verify_webhook(SECRET, headers, BODY)["type"] == "sync.completed"
    upper = {k.upper(): v for k, v in headers.items()}  # header names in any case
    assert verify_webhook(SECRET, upper, BODY.encode())["data"] == {}
    # Two signatures (a rotation): either secret verifies.
    both = dict(headers)
    both["webhook-signature"] = (
        _delivery(OTHER, BODY.encode())["webhook-signature"] + " " + headers["webhook-signature"]
    )
    assert verify_webhook(OTHER, both, BODY) and verify_webhook(SECRET, both, BODY)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda h, b: (h, b + " "), "tampered body"),
        (lambda h, b: ({**h, "webhook-id": "evt_2"}, b), "another id"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "unsigned"),
        (lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b), "wrong signature"),
        (lambda h, b: ({**h, "webhook-signature": "v2," + h["webhook-signature"][3:]}, b), "v2"),
    ],
)
def test_verify_webhook_refuses_what_was_not_signed_so(change: Any, why: str) -> None:
    headers, body = change(_delivery(SECRET, BODY.encode()), BODY)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, headers, body)


def test_verify_webhook_refuses_another_secret_and_stale_or_future_timestamps() -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(OTHER, _delivery(SECRET, BODY.encode()), BODY)
    old = _delivery(SECRET, BODY.encode(), when=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, old, BODY)
    assert verify_webhook(SECRET, old, BODY, tolerance=3600)  # a wider window takes it
    future = _delivery(SECRET, BODY.encode(), when=datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, future, BODY, now=time.time())


def test_the_reference_library_accepts_what_tether_signs() -> None:
    from tether.webhooks import signing

    body = BODY.encode()
    stamp = int(time.time())
    headers = signing.headers([SECRET], msg_id="evt_9", timestamp=stamp, body=body)
    assert Webhook(SECRET).verify(body, headers)["type"] == "sync.completed"
    assert verify_webhook(SECRET, headers, body)["type"] == "sync.completed"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def _json(result: Result) -> Any:
    lines = [line for line in result.stdout.splitlines() if line.startswith(("{", "["))]
    return json.loads(lines[-1])


def test_the_cli_manages_endpoints_and_lists_events(
    server: LiveServer, tenant: TenantCtx, runtime: Runtime, receiver: Receiver
) -> None:
    auth = ["--url", server.url, "--api-key", tenant.api_key]
    made = run("webhooks", "create", receiver.url, "--event", "sync.failed", *auth, "--json")
    assert made.exit_code == 0, made.output
    endpoint = _json(made)
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["sync.failed"]
    shown = run("webhooks", "show", endpoint["id"], *auth)
    assert shown.exit_code == 0 and receiver.url in shown.stdout and "whsec_" not in shown.stdout
    listed = _json(run("webhooks", "list", *auth, "--json"))
    assert [e["id"] for e in listed] == [endpoint["id"]]
    disabled = _json(run("webhooks", "update", endpoint["id"], "--disable", *auth, "--json"))
    assert disabled["disabled"] is True
    (event_id,) = emit(runtime, tenant, 1, type="sync.failed")
    events = _json(run("events", "list", "--type", "sync.failed", *auth, "--json"))
    assert [e["data"]["eventId"] for e in events["items"]] == [event_id]
    assert (
        _json(run("webhooks", "update", endpoint["id"], "--enable", *auth, "--json"))["disabled"]
        is False
    )
    # Events while it was disabled are not queued for it; a replay sends them.
    assert _json(run("webhooks", "deliveries", endpoint["id"], *auth, "--json"))["items"] == []
    rotated = _json(run("webhooks", "rotate-secret", endpoint["id"], *auth, "--json"))
    assert rotated["secret"] != endpoint["secret"]
    bad = run("webhooks", "replay", endpoint["id"], "--since", "yesterday", *auth)
    assert bad.exit_code == 2
    replayed = run("webhooks", "replay", endpoint["id"], "--since", "2020-01-01T00:00:00Z", *auth)
    assert replayed.exit_code == 0 and "1 events queued" in replayed.stdout
    deliveries = _json(run("webhooks", "deliveries", endpoint["id"], *auth, "--json"))
    assert [d["eventId"] for d in deliveries["items"]] == [event_id]
    assert run("webhooks", "redeliver", event_id, *auth).exit_code == 0
    assert run("webhooks", "delete", endpoint["id"], *auth).exit_code == 0
    missing = run("webhooks", "show", endpoint["id"], *auth)
    assert missing.exit_code == 4  # not found
    no_key = CliRunner().invoke(app, ["webhooks", "list", "--url", server.url], env={})
    assert no_key.exit_code == 3
