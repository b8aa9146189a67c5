"""Handing the member over to the page: app links, POST /app/session, the session cookie."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from tests.conftest import MemberCtx, TenantCtx
from tests.web.conftest import app_link, enter
from tether.accounts import members
from tether.identity.app_links import APP_LINK_TTL
from tether.identity.page_sessions import SESSION_TTL
from tether.runtime import Runtime
from tether.store.models import AuditEvent, utcnow
from tether.testing.live_server import LiveServer


def _browser(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def test_app_link_is_issued_to_the_tenant_for_its_own_member(
    client: httpx.Client, member: MemberCtx, other_tenant: TenantCtx, runtime: Runtime
) -> None:
    path = f"/v1/members/{member.member_id}/app-links"
    response = client.post(path, headers=member.tenant.headers)
    assert response.status_code == 201
    body = response.json()
    assert body["url"].startswith(f"{runtime.settings.public_base_url}/app/enter#")
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert abs(expires - (utcnow() + timedelta(seconds=APP_LINK_TTL))) < timedelta(seconds=30)
    # A member token cannot mint links; another tenant's key cannot see this member.
    assert client.post(path, headers=member.headers).status_code == 403
    assert client.post(path, headers=other_tenant.headers).status_code == 404
    assert client.post(path, headers={}).status_code == 401
    bad = client.post(path, headers=member.tenant.headers, json={"display": "window"})
    assert bad.status_code == 422


def test_enter_sets_a_strict_session_cookie_and_the_link_works_once(
    server: LiveServer, client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    link = app_link(client, member)
    assert member.token not in link
    with _browser(server) as browser:
        landing = browser.get("/app/enter")  # what the browser fetches: no token in it
        assert landing.status_code == 200 and "enter-form" in landing.text
        entered = enter(browser, link)
        assert entered.status_code == 303 and entered.headers["location"] == "/app"
        cookie = entered.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/app" in cookie
        assert entered.headers["cache-control"] == "no-store"
        assert entered.headers["referrer-policy"] == "no-referrer"
        page = browser.get("/app")
        assert page.status_code == 200 and "Your health data connections" in page.text
        assert "Acme Health" in page.text
    with _browser(server) as replay:
        again = enter(replay, link)
        assert again.status_code == 410 and "already used" in again.text
        assert "set-cookie" not in again.headers
        assert replay.get("/app").status_code == 401
    with runtime.db.read() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.member_id == member.member_id)
        ).all()
    assert list(actions) == ["web.app_link_issued", "web.app_link_used"]


def test_enter_link_expires(
    server: LiveServer, client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    link = app_link(client, member)
    runtime.clock = lambda: utcnow() + timedelta(seconds=APP_LINK_TTL + 1)
    with _browser(server) as browser:
        late = enter(browser, link)
    assert late.status_code == 410 and "expired" in late.text
    assert "set-cookie" not in late.headers


def test_forged_or_cross_site_enter_is_refused(
    server: LiveServer, client: httpx.Client, member: MemberCtx
) -> None:
    token = app_link(client, member).partition("#")[2]
    with _browser(server) as browser:
        forged = browser.post("/app/enter", data={"token": token[:-2] + "xx"})
        assert forged.status_code == 401 and "set-cookie" not in forged.headers
        # Another site posting a link (login CSRF) is refused, and the link is not used up.
        cross = browser.post(
            "/app/enter", data={"token": token}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert cross.status_code == 403 and "set-cookie" not in cross.headers
        ok = browser.post(
            "/app/enter", data={"token": token}, headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert ok.status_code == 303


def test_session_can_be_started_by_posting_a_member_token(
    server: LiveServer, member: MemberCtx
) -> None:
    with _browser(server) as browser:
        started = browser.post("/app/session", data={"token": member.token})
        assert started.status_code == 200 and 'data-page="entered"' in started.text
        assert "HttpOnly" in started.headers["set-cookie"]
        assert member.token not in started.text
        csp = started.headers["content-security-policy"]
        assert "frame-ancestors 'self' https://app.example.test" in csp
        assert browser.get("/app").status_code == 200
    with _browser(server) as browser:
        # From the tenant's own site: fine. From anywhere else: refused (login CSRF).
        own = browser.post(
            "/app/session",
            data={"token": member.token},
            headers={"Origin": "https://app.example.test"},
        )
        assert own.status_code == 200
        for origin in ("https://evil.example", "null"):
            other = browser.post(
                "/app/session", data={"token": member.token}, headers={"Origin": origin}
            )
            assert other.status_code == 403 and "set-cookie" not in other.headers
        api_key = browser.post("/app/session", data={"token": member.tenant.api_key})
        assert api_key.status_code == 403
        junk = browser.post("/app/session", data={"token": "eyJhbGciOiJIUzI1NiJ9.e30.x"})
        assert junk.status_code == 401


def test_session_ends_with_its_lifetime_or_a_disabled_member(
    member_browser: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    assert member_browser.get("/app").status_code == 200
    runtime.clock = lambda: utcnow() + timedelta(seconds=SESSION_TTL + 1)
    ended = member_browser.get("/app")
    assert ended.status_code == 401 and "open your connections again" in ended.text
    runtime.clock = utcnow
    assert member_browser.get("/app").status_code == 200
    with runtime.db.write() as session:
        members.disable_member(
            session, member_id=member.member_id, tenant_id=member.tenant.tenant_id
        )
    assert member_browser.get("/app").status_code == 401
    # A poll from htmx gets a fragment that replaces the list (and stops the polling).
    poll = member_browser.get(
        "/app/connections", headers={"HX-Request": "true", "HX-Target": "connections"}
    )
    assert poll.status_code == 401
    assert poll.text.startswith('<div id="connections"') and "hx-trigger" not in poll.text


def test_a_tampered_session_cookie_is_no_session(
    server: LiveServer, member_browser: httpx.Client
) -> None:
    (name,) = member_browser.cookies.keys()
    value = member_browser.cookies[name]
    with _browser(server) as browser:
        browser.cookies.set(name, value[:-3] + "abc", path="/app")
        assert browser.get("/app").status_code == 401
