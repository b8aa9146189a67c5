"""The operator console in Chromium, end to end: sign in with the API key, filter to EXPIRED,
find the failing connection, open its member, see why it failed, sync it now and watch it
finish (the embedded worker runs the job). axe-core checks every state (the ``shots``
fixture); screenshots go to test-artifacts/web/."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import MemberCtx, make_member
from tests.sync.helpers import connected, reload
from tether.connections.tokens import expire
from tether.jobs import EmbeddedWorker
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.sync.run import run_sync
from tether.testing.live_server import LiveServer

CLINIC = "sandbox-clinic"
WAIT = 20_000  # ms
Shots = Callable[[Page, str], None]


@pytest.mark.browser
def test_console_end_to_end(
    server: LiveServer,
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
    chromium: Browser,
    shots: Shots,
) -> None:
    # A webhook endpoint where nothing listens: its deliveries wait, visible in the console.
    runtime.settings = runtime.settings.model_copy(update={"webhooks_allow_private": True})
    hook = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hooks", "description": "app backend"},
        headers=member.tenant.headers,
    )
    assert hook.status_code == 201
    # alice's grant expired; bob's last sync failed because the source was down.
    alice = connected(client, member, runtime, CLINIC, "clinic-1")
    expire(runtime, connection_pk=alice.id, epoch=alice.grant_epoch, actor="test", reason="t")
    bob = make_member(runtime, member.tenant, "bob")
    failing = connected(client, bob, runtime, CLINIC, "clinic-2")
    sandbox.set_knobs(CLINIC, {"rate_503": 1.0, "retry_after": 0})
    try:
        run_sync(runtime, connection_pk=failing.id, epoch=failing.grant_epoch)
    finally:
        sandbox.reset(CLINIC)
    assert reload(runtime, failing.id).sync_status == "ERROR"

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/console")
    page.wait_for_url(f"{server.url}/console/signin")
    shots(page, "console-01-signin")
    page.get_by_label("API key").fill(member.tenant.api_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/console")
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    expect(page.locator("#connections-table tbody tr")).to_have_count(2)
    shots(page, "console-02-all")

    # Filter to EXPIRED: only alice.
    page.get_by_label("Status", exact=True).select_option("EXPIRED")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#connections-table tbody tr")).to_have_count(1)
    expect(page.locator("tr[data-member=alice]")).to_have_attribute("data-status", "EXPIRED")
    shots(page, "console-03-expired")

    # Failing syncs: bob, with the error code in the list.
    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_label("Sync status").select_option("ERROR")
    page.get_by_role("button", name="Filter").click()
    row = page.locator("tr[data-member=bob]")
    expect(row).to_contain_text("SOURCE_UNAVAILABLE")
    row.get_by_role("link", name="bob").click()
    expect(page.get_by_role("heading", name="Member bob")).to_be_visible()
    card = page.locator(f"#conn-{CLINIC}")
    expect(card.locator("[data-errors]")).to_be_visible()  # why the last sync failed
    expect(page.locator("#audit-table")).to_contain_text("sync.error")
    shots(page, "console-04-member")

    # Sync now; the worker runs it; reload until it has finished.
    worker = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)  # type: ignore[arg-type]
    worker.start()
    try:
        page.get_by_role("button", name="Sync now").click()
        expect(page.locator("#notice")).to_contain_text("Sync requested")
        shots(page, "console-05-sync-requested")
        for _ in range(100):
            if card.get_attribute("data-sync-status") == "RETRIEVED":
                break
            page.wait_for_timeout(200)
            page.get_by_role("link", name="Refresh").click()
        expect(card).to_have_attribute("data-sync-status", "RETRIEVED", timeout=WAIT)
        expect(card.locator("[data-errors]")).to_have_count(0)
    finally:
        worker.stop()
    expect(page.locator("#audit-table")).to_contain_text("sync.retrieved")
    # Newest first: a run that retrieved (the connect's own queued sync, and "Sync now" when
    # it found more to do), and further down the one that failed while the source was down.
    syncs = card.locator("[data-syncs] tbody tr")
    expect(syncs.nth(0)).to_contain_text("RETRIEVED")
    expect(syncs.last).to_contain_text("ERROR")
    shots(page, "console-06-synced")

    # Webhooks: the endpoint, its waiting deliveries and why; redeliver one.
    page.get_by_role("link", name="Webhooks").click()
    endpoint_row = page.locator(f"tr[data-endpoint={hook.json()['id']}]")
    expect(endpoint_row).to_contain_text("app backend")
    shots(page, "console-06b-webhooks")
    endpoint_row.get_by_role("link", name="app backend").click()
    delivered = page.locator("#deliveries-table tbody tr")
    expect(delivered.first).to_be_visible()
    expect(page.locator("#deliveries-table")).to_contain_text("could not connect")
    shots(page, "console-06c-deliveries")
    delivered.first.get_by_role("button", name="Redeliver").click()
    expect(page.locator("#notice")).to_contain_text("Queued for delivery again")

    # Source health and the queue.
    page.get_by_role("link", name="Data sources").click()
    expect(page.locator(f"tr[data-source={CLINIC}]")).to_have_attribute("data-health", "ok")
    shots(page, "console-07-sources")
    page.get_by_role("link", name="Queue").click()
    expect(page.locator("[data-fact=depth]")).to_be_visible()
    shots(page, "console-08-queue")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{server.url}/console/signin")
    assert not context.cookies()
    assert errors == []
    context.close()
