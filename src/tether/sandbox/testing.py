"""Drive the sandbox's consent page like a browser would, for tests and docs.

There is no test-only shortcut in the authorization endpoint: this helper GETs the
authorize URL, reads the HTML form, fills it in and POSTs it, exactly as a person with a
browser (without JavaScript) does.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

MAX_HOPS = 10


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


class ConsentError(RuntimeError):
    """The authorize URL did not lead to a consent form (or to a redirect with an error)."""


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: list[tuple[str, str]] = []
        self.patients: list[str] = []
        self.shares: list[str] = []  # the resource types the page lets the member untick

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden.append((a.get("name", ""), a.get("value", "")))
        elif tag == "input" and a.get("type") == "radio" and a.get("name") == "patient":
            self.patients.append(a.get("value", ""))
        elif tag == "input" and a.get("type") == "checkbox" and a.get("name") == "share":
            self.shares.append(a.get("value", ""))


def complete_consent(
    client: httpx.Client,
    authorize_url: str,
    *,
    patient: str | None = None,
    approve: bool = True,
    withhold: tuple[str, ...] = (),
) -> str:
    """Open ``authorize_url``, approve (as ``patient``, default the first) or deny, and
    return the ``Location`` the sandbox redirects to — not followed. ``withhold``: resource
    types to untick, on a page that offers the choice."""
    page = client.get(authorize_url, follow_redirects=False)
    for _ in range(MAX_HOPS):
        if not page.is_redirect:
            break
        target = urljoin(str(page.url), page.headers["location"])
        if _origin(target) != _origin(authorize_url):
            return page.headers["location"]  # back to the client: do not follow
        page = client.get(target, follow_redirects=False)
    parser = _FormParser()
    parser.feed(page.text)
    if page.status_code != 200 or parser.action is None:
        raise ConsentError(f"no consent form at the authorize URL (HTTP {page.status_code})")
    choice = patient if patient is not None else (parser.patients or [""])[0]
    if patient is not None and patient not in parser.patients:
        raise ConsentError(f"patient {patient!r} is not offered; offered: {parser.patients}")
    if withhold and not parser.shares:
        raise ConsentError("this consent page offers no choice of resource types")
    form = [*parser.hidden, ("patient", choice), ("decision", "approve" if approve else "deny")]
    form += [("share", t) for t in parser.shares if t not in withhold]
    fields: dict[str, str | list[str]] = {}
    for name, value in form:
        if name == "share":
            shared = fields.setdefault(name, [])
            assert isinstance(shared, list)
            shared.append(value)
        else:
            fields[name] = value
    answer = client.post(urljoin(str(page.url), parser.action), data=fields, follow_redirects=False)
    if not answer.is_redirect:
        raise ConsentError(f"the consent form answered HTTP {answer.status_code}, not a redirect")
    return answer.headers["location"]
