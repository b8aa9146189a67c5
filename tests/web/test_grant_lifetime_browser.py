"""The member page shows what a narrower grant left out and when access ends, in Chromium,
with axe-core over each state (connected through the sandbox's consent page, unticking a
type, at the source that ends grants after 30 days)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import MemberCtx
from tests.web.conftest import app_link, connection_row
from tether.jobs import EmbeddedWorker
from tether.runtime import Runtime
from tether.store.models import Connection
from tether.testing.live_server import LiveServer

REGIONAL = "sandbox-regional"
WAIT = 15_000
Shots = Callable[[Page, str], None]


@pytest.mark.browser
def test_not_shared_types_and_the_end_of_access(
    server: LiveServer,
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    chromium: Browser,
    shots: Shots,
) -> None:
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(app_link(client, member))
    page.wait_for_url(f"{server.url}/app")
    search = page.get_by_label("Name of your health system, insurer, lab or pharmacy")
    search.fill("regional")
    search.press("Enter")
    with page.expect_popup() as opened:
        page.locator(f"#connect-{REGIONAL}").click()
    popup = opened.value
    popup.wait_for_load_state()
    popup.uncheck("input[name=share][value=Immunization]")
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Approve").click()

    card = page.locator(f"#conn-{REGIONAL}")
    expect(card).to_have_attribute("data-sync-status", "RETRIEVED", timeout=WAIT)
    expect(card.locator("[data-not-shared]")).to_have_text("Immunizations")
    expect(card.locator(".access-note")).to_contain_text("Access ends in 29 days")
    expect(card.locator(".access-note.ending-soon")).to_have_count(0)
    expect(page.locator(f"#reconnect-{REGIONAL}")).to_have_count(0)
    shots(page, "g1-not-shared")

    # Within the notice period the note asks to reconnect, and Reconnect is offered while
    # the connection still works.
    pk = connection_row(runtime, member, REGIONAL).id
    with runtime.db.write() as session:
        row = session.get(Connection, pk)
        assert row is not None
        row.authorization_expires_at = runtime.clock() + timedelta(days=3, hours=1)
    page.reload()
    expect(card.locator(".access-note.ending-soon")).to_have_text(
        "Access ends in 3 days: reconnect to keep it."
    )
    expect(page.locator(f"#reconnect-{REGIONAL}")).to_be_visible()
    shots(page, "g2-ending-soon")
    context.close()
