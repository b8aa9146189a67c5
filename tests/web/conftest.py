"""Helpers for the member page's tests: app links, a browser-like httpx client, Chromium."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import REQUIRE_SERVICES, MemberCtx
from tether.connections import queries
from tether.runtime import Runtime
from tether.store.models import Connection
from tether.testing.live_server import LiveServer

CHROMIUM = os.environ.get("TETHER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
# tether's own pages (the sandbox's consent page stands for a data source's, not ours)
OWN_PAGES = ("/app", "/oauth/", "/console")


def axe_source() -> str:
    """axe-core, as the ``axe-playwright-python`` package ships it (a dev dependency)."""
    spec = importlib.util.find_spec("axe_playwright_python")
    if spec is None or spec.origin is None:
        message = "axe-playwright-python is not installed (pip install -e '.[dev]')"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return (Path(spec.origin).parent / "axe.min.js").read_text()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core run in the page (through the DevTools protocol, which the page's CSP does not
    govern); WCAG 2.x A/AA and best practices."""
    page.evaluate(axe_source())
    result: dict[str, Any] = page.evaluate(
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice']})"
    )
    assert result["passes"], "axe checked nothing"
    return [{"id": v["id"], "nodes": len(v["nodes"])} for v in result["violations"]]


def app_link(api: httpx.Client, member: MemberCtx, **body: str) -> str:
    response = api.post(
        f"/v1/members/{member.member_id}/app-links",
        headers=member.tenant.headers,
        json=body or None,
    )
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    return url


def enter(browser: httpx.Client, link: str) -> httpx.Response:
    """What the enter page's script does: POST the fragment's token to /app/enter."""
    path, _, token = link.partition("#")
    assert path.endswith("/app/enter") and token
    return browser.post("/app/enter", data={"token": token})


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def member_browser(
    server: LiveServer, client: httpx.Client, member: MemberCtx
) -> Iterator[httpx.Client]:
    """An httpx 'browser' (own cookie jar) signed in to the page as ``member``."""
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        entered = enter(browser, app_link(client, member))
        assert entered.status_code == 303
        yield browser


def connection_row(runtime: Runtime, member: MemberCtx, connection_id: str) -> Connection:
    with runtime.db.read() as session:
        conn = queries.connection_for(
            session, member_id=member.member_id, connection_id=connection_id
        )
        assert conn is not None
        return conn


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (scripts/with-services installs it)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Callable[[Page, str], None]:
    """``shots(page, "01-name")`` saves a screenshot under test-artifacts/web/ and, on tether's
    own pages, runs axe-core over that state: WCAG 2.1 AA, no violations."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    db = getattr(request.node, "callspec", None)
    suffix = f"-{db.params['db_url']}" if db and "db_url" in db.params else ""

    def take(page: Page, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), full_page=True)
        if urlsplit(page.url).path.startswith(OWN_PAGES):
            assert axe_violations(page) == [], f"{name}: {page.url}"

    return take
