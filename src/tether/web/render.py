"""Rendering tether's HTML pages (the member page, the OAuth launch and completion pages): the
one Jinja2 environment (autoescaped) and the one Content-Security-Policy builder.

The Content-Security-Policy allows only scripts and styles that carry this response's nonce
(tether's own ``app.js``, ``app.css`` and the vendored htmx), requests to tether itself, forms
that post to tether itself, and no plugins, no ``eval`` and no inline event handlers.
``frame-ancestors`` allows tether itself and the origins of the tenant's allow-listed return
URLs (the tenant's own web app), so a tenant that serves tether on its own site can frame the
page; before anyone is signed in only tether itself may frame it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from tether.http.origins import origin_of
from tether.ids import new_secret

HERE = Path(__file__).parent
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
STATIC = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_ORIGIN = re.compile(r"^https?://[a-z0-9.\-]+(:[0-9]{1,5})?$")


@cache
def static_version(name: str) -> str:
    """A content hash for cache-busting ``/app/static/<name>?v=…``."""
    return hashlib.sha256((HERE / "static" / name).read_bytes()).hexdigest()[:12]


def frame_ancestors(return_urls: Iterable[str] = ()) -> str:
    """``'self'`` plus the origins of the tenant's return URLs (well-formed ones only)."""
    origins = sorted({o for o in (origin_of(u) for u in return_urls) if _ORIGIN.match(o)})
    return " ".join(["'self'", *origins])


def csp(nonce: str, ancestors: str) -> str:
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        f"frame-ancestors {ancestors}"
    )


# The member page: keeps window.opener for the sign-in popup, isolates it from anything else,
# and varies with the session and htmx. Not for the OAuth completion page, whose opener may be
# the tenant's own site (a cross-origin opener must stay reachable for postMessage).
MEMBER_PAGE_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
    "Vary": "Cookie, HX-Request",
}


def headers(nonce: str, ancestors: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp(nonce, ancestors),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def render(
    template: str,
    *,
    status_code: int = 200,
    ancestors: str = "'self'",
    extra_headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` with a fresh nonce; ``ancestors`` is the CSP's ``frame-ancestors``."""
    nonce = new_secret(16)
    html = TEMPLATES.get_template(template).render(nonce=nonce, version=static_version, **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={**headers(nonce, ancestors), **(extra_headers or {})},
    )


def render_page(template: str, **kwargs: Any) -> HTMLResponse:
    """A member-page response: :func:`render` plus :data:`MEMBER_PAGE_HEADERS`."""
    extra = {**MEMBER_PAGE_HEADERS, **(kwargs.pop("extra_headers", None) or {})}
    return render(template, extra_headers=extra, **kwargs)
