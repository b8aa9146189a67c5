"""Drive the whole establish flow the way a member's browser does (tests, docs, CLI demos).

No backdoor: the member's app asks for a redirectUrl, a browser (an ``httpx.Client`` with its
own cookie jar) follows it to the source, the sandbox's consent form is submitted, and the
browser follows the redirect back to tether's callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

from tether.runtime import outbound_tls
from tether.sandbox.testing import complete_consent


@dataclass(frozen=True)
class FlowResult:
    callback_url: str  # the source's redirect back to tether (carries code and state)
    response: httpx.Response  # tether's answer to the callback
    redirect_url: str  # the launch link that started it

    @property
    def status_code(self) -> str | None:
        """The outcome tether reported (return URL query, or the completion page payload)."""
        if self.response.status_code in (302, 303):
            query = parse_qs(urlsplit(self.response.headers["location"]).query)
            return query.get("status_code", [None])[0]
        text = self.response.text
        marker = '"statusCode": "'
        if marker in text:
            return text.split(marker, 1)[1].split('"', 1)[0]
        return None


def get_redirect_url(
    api: httpx.Client,
    member_headers: dict[str, str],
    connection_id: str,
    return_url: str | None = None,
) -> str:
    body = {"returnUrl": return_url} if return_url else None
    response = api.post(
        f"/v1/connections/{connection_id}/oauth-url", headers=member_headers, json=body
    )
    response.raise_for_status()
    url: str = response.json()["redirectUrl"]
    return url


def authorize_in_browser(
    browser: httpx.Client,
    redirect_url: str,
    *,
    patient: str | None = None,
    approve: bool = True,
    withhold: tuple[str, ...] = (),
) -> FlowResult:
    """Follow ``redirect_url`` to the source, consent there (unticking ``withhold``), and
    come back to tether."""
    launched = browser.get(redirect_url, follow_redirects=False)
    if launched.status_code != 302:
        return FlowResult(callback_url="", response=launched, redirect_url=redirect_url)
    callback = complete_consent(
        browser, launched.headers["location"], patient=patient, approve=approve, withhold=withhold
    )
    finished = browser.get(callback, follow_redirects=False)
    return FlowResult(callback_url=callback, response=finished, redirect_url=redirect_url)


def connect(
    api: httpx.Client,
    member_headers: dict[str, str],
    connection_id: str,
    *,
    patient: str | None = None,
    approve: bool = True,
    return_url: str | None = None,
    withhold: tuple[str, ...] = (),
) -> FlowResult:
    """getOauthUrl, then the browser round trip, in a fresh browser."""
    url = get_redirect_url(api, member_headers, connection_id, return_url)
    # A fresh cookie jar each time, but one TLS context per process (loading the CA bundle
    # costs more than the rest of the round trip on loopback).
    with httpx.Client(timeout=api.timeout, verify=outbound_tls()) as browser:
        return authorize_in_browser(
            browser, url, patient=patient, approve=approve, withhold=withhold
        )
