"""'Download my records' on the member page, in Chromium: prepare the copy (a Bulk Data export
of the member's own data, run by the worker), wait for it, download the ZIP, and check it
holds every stored record; axe-core checks each state. Also: another member's download link
gives nothing."""

from __future__ import annotations

import json
import zipfile
from collections import Counter

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import MemberCtx
from tests.data.test_fhir_api import CLINIC, PATIENT, synced
from tests.sync.helpers import stored
from tests.web.conftest import app_link, csrf_of, enter
from tests.web.test_browser import WAIT, Shots
from tether.jobs import EmbeddedWorker
from tether.runtime import Runtime
from tether.testing.live_server import LiveServer


@pytest.mark.browser
def test_member_downloads_a_copy_of_their_records(
    server: LiveServer,
    client: httpx.Client,
    member: MemberCtx,
    other_member: MemberCtx,
    runtime: Runtime,
    worker: EmbeddedWorker,
    chromium: Browser,
    shots: Shots,
) -> None:
    conn = synced(client, member, runtime, CLINIC, PATIENT)
    context = chromium.new_context(viewport={"width": 1024, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(app_link(client, member))
    page.wait_for_url(f"{server.url}/app")
    panel = page.locator("#records")
    expect(panel).to_have_attribute("data-export-status", "none")
    shots(page, "records-01-none")

    page.locator("#prepare-records").click()
    expect(panel).to_have_attribute("data-export-status", "completed", timeout=WAIT)
    download_link = page.locator("#download-records")
    expect(download_link).to_be_visible()
    total = sum(stored(runtime, conn.id).values())
    expect(page.locator("#records-state")).to_contain_text(f"{total:,} records")
    shots(page, "records-02-ready")

    with page.expect_download() as started:
        download_link.click()
    path = started.value.path()
    with zipfile.ZipFile(path) as bundle:
        found: Counter[str] = Counter()
        for name in bundle.namelist():
            for line in bundle.read(name).decode().splitlines():
                found[json.loads(line)["resourceType"]] += 1
    assert found == Counter(stored(runtime, conn.id))
    href = download_link.get_attribute("href")
    assert href
    context.close()

    # Another member, signed in to their own page, cannot fetch it.
    with httpx.Client(base_url=server.url, timeout=30) as other:
        assert enter(other, app_link(client, other_member)).status_code == 303
        denied = other.get(href)
        assert denied.status_code == 404 and not denied.content.startswith(b"PK")
        # Their own panel offers to prepare their own copy, with a CSRF-checked form.
        page_html = other.get("/app").text
        assert 'data-export-status="none"' in page_html
        refused = other.post("/app/records/export", data={"csrf": "wrong"})
        assert refused.status_code == 403
        accepted = other.post("/app/records/export", data={"csrf": csrf_of(page_html)})
        assert accepted.status_code == 303
