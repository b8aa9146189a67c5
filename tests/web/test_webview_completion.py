"""The completion page as a native app's webview sees it: no return URL and no
``window.opener``. In Chromium, the page says the member can return to the app, carries the
result in its URL fragment and its ``<meta>`` elements (docs/native.md), keeps its strict CSP,
and passes axe-core with no violations."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import MemberCtx
from tests.web.conftest import axe_violations
from tether.testing.flow import connect, get_redirect_url
from tether.testing.live_server import LiveServer

CLINIC = "sandbox-clinic"
Shots = Callable[[Page, str], None]


@pytest.mark.browser
def test_completion_page_in_a_webview_without_opener(
    server: LiveServer, client: httpx.Client, member: MemberCtx, chromium: Browser, shots: Shots
) -> None:
    link = get_redirect_url(client, member.headers, CLINIC)
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(link)  # same window, as a webview opens it: no opener
    page.check("input[name=patient][value=clinic-1]")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/oauth/callback?*#status_code=success&connectionId=sandbox-clinic")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connected")
    expect(page.get_by_text("return to the app")).to_be_visible()
    assert page.evaluate("window.opener") is None and not page.is_closed()
    fragment = page.evaluate("location.hash")
    assert fragment == f"#status_code=success&connectionId={CLINIC}"
    metas = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('meta[name^=\"tether:\"]')]"
        ".map(m => [m.name, m.content]))"
    )
    assert metas == {"tether:status-code": "success", "tether:connection-id": CLINIC}
    shots(page, "webview-completion")
    assert axe_violations(page) == []
    assert not [line for line in console if "Content Security Policy" in line]
    context.close()


def test_completion_page_posts_only_to_known_origins(
    client: httpx.Client, member: MemberCtx, server: LiveServer
) -> None:
    patched = client.patch(
        "/v1/tenant",
        headers=member.tenant.headers,
        json={"allowedOrigins": ["capacitor://localhost"]},
    )
    assert patched.status_code == 200
    page = connect(client, member.headers, CLINIC, patient="clinic-1").response
    assert page.status_code == 200
    targets = page.text.split('id="tether-targets">', 1)[1].split("</script>", 1)[0]
    assert json.loads(targets) == sorted(
        ["capacitor://localhost", "https://app.example.test", server.url]
    )
    assert '"*"' not in page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
