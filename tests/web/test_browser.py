"""The member page in Chromium, end to end against the live server and the sandbox: enter by
app link, search, connect through the sandbox's consent in a popup, sync (the embedded worker
runs the jobs), expire, reconnect, sync now, disconnect, delete. Screenshots go to
test-artifacts/web/."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import MemberCtx
from tests.web.conftest import app_link, connection_row
from tether.connections.tokens import refresh_connection
from tether.jobs import EmbeddedWorker
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.testing.live_server import LiveServer

CLINIC = "sandbox-clinic"
WAIT = 15_000  # ms; the page polls every 2 s while anything is busy
Shots = Callable[[Page, str], None]


def _consent_in_popup(page: Page, button: str, shots: Shots, shot: str) -> None:
    """Click ``button``; in the popup, sign in as patient clinic-1 and approve."""
    with page.expect_popup() as opened:
        page.locator(button).click()
    popup = opened.value
    popup.wait_for_load_state()
    popup.check("input[name=patient][value=clinic-1]")
    shots(popup, shot)
    with popup.expect_event("close"):  # tether's completion page posts back and closes
        popup.get_by_role("button", name="Approve").click()


def _wait_for(check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.browser
def test_member_page_end_to_end(
    server: LiveServer,
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
    worker: EmbeddedWorker,
    chromium: Browser,
    shots: Shots,
) -> None:
    link = app_link(client, member)
    context = chromium.new_context(viewport={"width": 390, "height": 844})  # a phone's webview
    requested: list[str] = []
    console_errors: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = context.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    # Enter: the fragment's token is posted, the address bar ends at /app.
    page.goto(link)
    page.wait_for_url(f"{server.url}/app")
    expect(page.get_by_role("heading", name="Your health data connections")).to_be_visible()
    expect(page.get_by_text("You have not connected any data source yet")).to_be_visible()
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/app"
    shots(page, "01-empty")
    page.evaluate("window.__noReload = true")

    # Search with a type filter (keyboard: type, pick, Enter).
    page.get_by_label("Name of your health system, insurer, lab or pharmacy").fill("sandbox")
    page.get_by_label("Type").select_option("CLINICAL")
    page.get_by_label("Name of your health system, insurer, lab or pharmacy").press("Enter")
    expect(page.locator("#results [data-source=sandbox-clinic]")).to_be_visible()
    expect(page.locator("#results [data-source=sandbox-insurer]")).to_have_count(0)
    shots(page, "02-search")

    # Connect in a popup; the completion page reports back with postMessage.
    _consent_in_popup(page, f"#connect-{CLINIC}", shots, "03-consent-popup")
    card = page.locator(f"#conn-{CLINIC}")
    expect(card).to_have_attribute("data-status", "CONNECTED", timeout=WAIT)
    expect(page.locator("#flash")).to_contain_text("Sandbox Community Clinic is connected")
    expect(page.locator("#results [data-source=sandbox-clinic] .badge")).to_have_text("Connected")
    shots(page, "04-connected")

    # The worker syncs it; the page polls its way to RETRIEVED, with counts.
    expect(card).to_have_attribute("data-sync-status", "RETRIEVED", timeout=WAIT)
    counts = connection_row(runtime, member, CLINIC).resource_counts
    total = int(card.locator("[data-total]").get_attribute("data-total") or 0)
    assert total == sum(counts.values()) > 0
    card.locator("details.counts summary").click()
    expect(card.locator("details.counts")).to_contain_text("Observations")
    assert page.evaluate("window.__noReload") is True
    shots(page, "05-retrieved")

    # Revoked at the source: the next refresh gets invalid_grant and the connection expires.
    sandbox.revoke_all(CLINIC)
    refresh_connection(
        runtime, connection_pk=connection_row(runtime, member, CLINIC).id, stale_sealed=None
    )
    page.reload()
    expect(card).to_have_attribute("data-status", "EXPIRED")
    expect(card.locator(".sync-errors")).to_contain_text("authorization expired")
    shots(page, "06-expired")
    page.evaluate("window.__noReload = true")

    # Reconnect, then "Sync now".
    _consent_in_popup(page, f"#reconnect-{CLINIC}", shots, "07-consent-again")
    expect(card).to_have_attribute("data-status", "CONNECTED", timeout=WAIT)
    expect(card.locator(".sync-errors")).to_have_count(0)
    expect(card).to_have_attribute("data-sync-status", "RETRIEVED", timeout=WAIT)
    synced = connection_row(runtime, member, CLINIC).last_synced_at
    assert synced is not None
    page.locator(f"#sync-{CLINIC}").click()
    expect(page.locator("#flash")).to_contain_text("A sync of Sandbox Community Clinic")
    _wait_for(lambda: (connection_row(runtime, member, CLINIC).last_synced_at or synced) > synced)
    expect(card.locator("[data-badge=sync]")).to_have_text("Records: Up to date", timeout=WAIT)
    # "Last syncs": newest first, why each ran and what it changed.
    syncs = card.locator("details.syncs")
    syncs.locator("summary").click()
    rows = syncs.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Sync now")
    expect(rows.nth(1)).to_contain_text("After reconnecting")
    expect(rows.nth(2)).to_contain_text("First sync")
    expect(rows.nth(2)).to_contain_text("new")
    shots(page, "07b-last-syncs")

    # Disconnect: the records stay.
    page.locator(f"#disconnect-{CLINIC}").click()
    expect(card).to_have_attribute("data-status", "DISCONNECTED")
    expect(page.locator("#flash")).to_contain_text("records retrieved so far are kept")
    expect(card.locator("[data-total]")).not_to_have_attribute("data-total", "0")
    shots(page, "08-disconnected")

    # Delete, after a confirmation that says the data goes; "Keep it" backs out.
    page.locator(f"#delete-{CLINIC}").click()
    confirm = page.locator(f"#confirm-delete-{CLINIC}")
    expect(confirm).to_contain_text("deletes every record tether retrieved")
    shots(page, "09-confirm-delete")
    confirm.get_by_role("button", name="Keep it").click()
    expect(page.locator(f"#confirm-delete-button-{CLINIC}")).to_be_hidden()
    expect(page.locator(f"#delete-{CLINIC}")).to_be_focused()
    page.locator(f"#delete-{CLINIC}").click()
    page.locator(f"#confirm-delete-button-{CLINIC}").click()
    expect(card).to_have_attribute("data-status", "DELETED")
    expect(page.locator("#flash")).to_contain_text("Its records are being removed")
    shots(page, "10-deleting")
    expect(card).to_have_attribute("data-sync-status", "DATA_DELETED", timeout=WAIT)
    expect(card.locator("[data-total]")).to_have_attribute("data-total", "0")
    expect(page.locator("#connections")).to_have_attribute("data-polling", "no")
    expect(page.locator(f"#reconnect-{CLINIC}")).to_be_visible()
    assert page.evaluate("window.__noReload") is True
    shots(page, "11-data-deleted")

    page.set_viewport_size({"width": 1100, "height": 900})
    shots(page, "12-desktop")

    # No credential travelled in a URL, and the CSP refused nothing the page needed.
    token = link.partition("#")[2]
    assert requested and not [u for u in requested if member.token in u or token in u]
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
    context.close()
