"""The page as an adapter: CSRF, member isolation, no credential in a URL, CSP, fallbacks."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import MemberCtx
from tests.web.conftest import app_link, connection_row, csrf_of, enter
from tether.runtime import Runtime
from tether.store.models import AuditEvent, Tenant
from tether.testing.flow import authorize_in_browser, connect
from tether.testing.live_server import LiveServer

CLINIC = "sandbox-clinic"
URL_ATTRIBUTES = ("href", "src", "action", "hx-get", "hx-post")


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.handlers: list[str] = []
        self.nonces: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value:
                self.urls.append(value)
            if name.startswith("on") or name.startswith("hx-on"):
                self.handlers.append(f"{tag} {name}")
        if tag in ("script", "style") or (tag == "link" and ("rel", "stylesheet") in attrs):
            self.nonces.append((tag, dict(attrs).get("nonce")))


def _parse(html: str) -> _Urls:
    parser = _Urls()
    parser.feed(html)
    return parser


def _connected(client: httpx.Client, member: MemberCtx) -> None:
    assert connect(client, member.headers, CLINIC, patient="clinic-1").status_code == "success"


def _actions(runtime: Runtime, member: MemberCtx) -> list[str]:
    with runtime.db.read() as session:
        return list(
            session.scalars(
                select(AuditEvent.action).where(
                    AuditEvent.member_id == member.member_id,
                    AuditEvent.action.like("connection.%"),
                )
            )
        )


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_state_changes_without_the_csrf_token_are_refused_and_change_nothing(
    client: httpx.Client,
    member: MemberCtx,
    member_browser: httpx.Client,
    runtime: Runtime,
    htmx: bool,
) -> None:
    _connected(client, member)
    csrf = csrf_of(member_browser.get("/app").text)
    before = _actions(runtime, member)
    headers = {"HX-Request": "true", "HX-Target": "connections"} if htmx else {}
    for action in ("disconnect", "delete", "sync", "connect"):
        path = f"/app/connections/{CLINIC}/{action}"
        for data, extra in (
            ({}, {}),
            ({"csrf": "not-the-token"}, {}),
            ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
            ({"csrf": csrf}, {"Origin": "https://evil.example"}),
        ):
            refused = member_browser.post(path, data=data, headers={**headers, **extra})
            assert refused.status_code == 403, (action, data, extra)
            assert "verified" in refused.text or "another site" in refused.text
    assert _actions(runtime, member) == before
    conn = connection_row(runtime, member, CLINIC)
    assert conn.status == "CONNECTED" and conn.access_token is not None

    done = member_browser.post(
        f"/app/connections/{CLINIC}/disconnect",
        data={"csrf": csrf},
        headers={**headers, "Sec-Fetch-Site": "same-origin"},
    )
    if htmx:
        assert done.status_code == 200 and 'data-status="DISCONNECTED"' in done.text
        assert 'hx-swap-oob="innerHTML"' in done.text and "records retrieved so far" in done.text
    else:
        assert done.status_code == 303
        assert done.headers["location"] == f"/app?notice=disconnected&connectionId={CLINIC}"
        assert (
            "records retrieved so far are kept" in member_browser.get(done.headers["location"]).text
        )
    assert connection_row(runtime, member, CLINIC).status == "DISCONNECTED"


def test_another_members_session_cannot_see_or_touch_this_members_connections(
    server: LiveServer,
    client: httpx.Client,
    member: MemberCtx,
    other_member: MemberCtx,
    member_browser: httpx.Client,
    runtime: Runtime,
) -> None:
    _connected(client, member)
    alice_csrf = csrf_of(member_browser.get("/app").text)
    with httpx.Client(base_url=server.url, timeout=30) as bob:
        assert enter(bob, app_link(client, other_member)).status_code == 303
        page = bob.get("/app?q=sandbox")  # the results' forms carry Bob's CSRF token
        assert 'data-connection="sandbox-clinic"' not in page.text
        bob_csrf = csrf_of(page.text)
        for action in ("disconnect", "delete", "sync"):
            answer = bob.post(f"/app/connections/{CLINIC}/{action}", data={"csrf": bob_csrf})
            assert answer.status_code == 404, action
            assert "No connection" in answer.text
        # Alice's CSRF token is worth nothing with Bob's cookie.
        stolen = bob.post(f"/app/connections/{CLINIC}/delete", data={"csrf": alice_csrf})
        assert stolen.status_code == 403
    conn = connection_row(runtime, member, CLINIC)
    assert conn.status == "CONNECTED" and conn.sync_status == "PENDING"


def test_no_credential_appears_in_any_url_the_page_produces(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, server: LiveServer
) -> None:
    _connected(client, member)
    link = app_link(client, member)
    link_token = link.partition("#")[2]
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        entered = enter(browser, link)
        locations = [entered.headers["location"]]
        pages = [
            browser.get("/app?q=sandbox"),
            browser.get("/app/connections", headers={"HX-Request": "true"}),
            browser.get("/app/sources?q=sandbox", headers={"HX-Request": "true"}),
        ]
        csrf = csrf_of(pages[0].text)
        started = browser.post(
            f"/app/connections/{CLINIC}/connect",
            data={"csrf": csrf, "display": "popup"},
            headers={"Accept": "application/json"},
        )
        assert started.status_code == 200
        redirect_url = started.json()["redirectUrl"]
        assert redirect_url.startswith(f"{server.url}/oauth/launch/")
        no_js = browser.post(f"/app/connections/{CLINIC}/connect", data={"csrf": csrf})
        assert no_js.status_code == 200 and "/oauth/launch/" in no_js.text
        pages.append(no_js)
    urls = [u for page in pages for u in _parse(page.text).urls] + locations + [redirect_url]
    assert len(urls) > 10
    secrets = (member.token, link_token, member.tenant.api_key, csrf)
    assert not [u for u in urls if any(s in u for s in secrets) or "token=" in u]


def test_every_page_has_a_strict_nonce_csp_and_no_inline_handlers(
    server: LiveServer, client: httpx.Client, member: MemberCtx, member_browser: httpx.Client
) -> None:
    _connected(client, member)
    responses = [
        member_browser.get("/app?q=sandbox"),
        member_browser.get("/app/connections", headers={"HX-Request": "true"}),
        member_browser.get("/app/enter"),
        httpx.get(f"{server.url}/app"),  # signed out
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_\-]+)'", csp)
        assert nonce, csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "default-src 'none'" in csp and "base-uri 'none'" in csp
        assert "form-action 'self'" in csp and "frame-ancestors 'self'" in csp
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        parsed = _parse(response.text)
        assert parsed.handlers == []
        assert all(n == nonce.group(1) for _, n in parsed.nonces), parsed.nonces
        assert "javascript:" not in response.text
    page = responses[0]
    assert (
        "frame-ancestors 'self' https://app.example.test" in page.headers["content-security-policy"]
    )
    assert '"allowEval":false' in page.text and '"historyCacheSize":0' in page.text


def test_vendored_htmx_and_static_files(client: httpx.Client) -> None:
    htmx = client.get("/app/static/htmx.min.js?v=1")
    assert htmx.status_code == 200 and htmx.headers["content-type"].startswith("text/javascript")
    assert htmx.text.startswith("/*! htmx.org 2.") and "Zero-Clause BSD" in htmx.text[:400]
    assert "immutable" in htmx.headers["cache-control"]
    assert client.get("/app/static/app.js").headers["cache-control"] == "no-cache"
    assert client.get("/app/static/../pages.py").status_code == 404
    assert client.get("/app/static/pages.py").status_code == 404


def test_search_filters_by_type_and_explains_problems_in_plain_words(
    member_browser: httpx.Client,
) -> None:
    hx = {"HX-Request": "true"}
    found = member_browser.get("/app/sources?q=sandbox&type=LAB", headers=hx)
    assert found.status_code == 200
    assert 'data-source="sandbox-lab"' in found.text
    assert 'data-source="sandbox-clinic"' not in found.text
    assert "Connect" in found.text
    none = member_browser.get("/app/sources?q=zzzz", headers=hx)
    assert "Nothing matches" in none.text
    bad = member_browser.get("/app/sources?q=a+b+c+d+e+f+g", headers=hx)
    assert (
        bad.status_code == 400 and "Invalid request." in bad.text and "at most 6 words" in bad.text
    )
    # Without htmx, the search is the whole page.
    plain = member_browser.get("/app/sources?q=sandbox")
    assert plain.status_code == 303 and plain.headers["location"] == "/app?q=sandbox"
    assert 'data-source="sandbox-clinic"' in member_browser.get("/app?q=sandbox").text


def test_conflicts_are_shown_in_plain_words(
    client: httpx.Client, member: MemberCtx, member_browser: httpx.Client
) -> None:
    _connected(client, member)
    csrf = csrf_of(member_browser.get("/app").text)
    hx = {"HX-Request": "true", "HX-Target": "connections"}
    member_browser.post(f"/app/connections/{CLINIC}/disconnect", data={"csrf": csrf}, headers=hx)
    again = member_browser.post(f"/app/connections/{CLINIC}/sync", data={"csrf": csrf}, headers=hx)
    assert again.status_code == 409
    assert "Conflict." in again.text and "Only a CONNECTED connection can sync" in again.text
    retired = member_browser.post(
        "/app/connections/sandbox-retired-clinic/connect",
        data={"csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert retired.status_code == 409 and retired.json()["detail"].endswith(".")


def test_without_popups_the_sign_in_returns_to_the_page(
    client: httpx.Client,
    member: MemberCtx,
    member_browser: httpx.Client,
    runtime: Runtime,
) -> None:
    """display=redirect: the sign-in comes back to /app (tether's own page is always a valid
    return URL, whatever the tenant's allow-list says)."""
    csrf = csrf_of(member_browser.get("/app?q=sandbox").text)
    answer = member_browser.post(
        f"/app/connections/{CLINIC}/connect",
        data={"csrf": csrf, "display": "redirect"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200
    back = f"{runtime.settings.public_base_url}/app"
    with runtime.db.read() as session:
        tenant = session.get(Tenant, member.tenant.tenant_id)
        assert tenant is not None and back not in tenant.return_urls
    with httpx.Client(timeout=30) as browser:
        result = authorize_in_browser(browser, answer.json()["redirectUrl"], patient="clinic-1")
    location = result.response.headers["location"]
    assert location == f"{back}?status_code=success&connectionId={CLINIC}"
    landed = member_browser.get(location.removeprefix(runtime.settings.public_base_url))
    assert "Sandbox Community Clinic is connected" in landed.text
    denied = member_browser.get("/app?status_code=<script>&connectionId=x")
    assert "<script>" not in denied.text and "could not be completed" in denied.text
