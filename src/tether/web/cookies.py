"""The member page's session cookie and its request checks (the session itself is
:mod:`tether.identity.page_sessions`).

The cookie is ``HttpOnly``, ``SameSite=Strict`` and, when tether is served over HTTPS,
``Secure`` with the ``__Host-`` prefix (no subdomain can set or shadow it). Every
state-changing request carries the session's CSRF secret (form field ``csrf`` or header
``X-CSRF-Token``) and must come from tether's own page (``Sec-Fetch-Site``, else ``Origin``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tether.errors import Forbidden
from tether.http.origins import origin_of
from tether.identity.page_sessions import SESSION_TTL, PageSession, open_session, seal_session
from tether.runtime import Runtime

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def _https(runtime: Runtime) -> bool:
    return runtime.settings.public_base_url.startswith("https://")


def cookie_name(runtime: Runtime) -> str:
    return "__Host-tether_app" if _https(runtime) else "tether_app"


def cookie_path(runtime: Runtime) -> str:
    return "/" if _https(runtime) else "/app"  # __Host- cookies must use Path=/


def set_cookie(runtime: Runtime, response: Response, session: PageSession) -> None:
    response.set_cookie(
        cookie_name(runtime),
        seal_session(runtime, session),
        max_age=SESSION_TTL,
        path=cookie_path(runtime),
        httponly=True,
        secure=_https(runtime),
        samesite="strict",
    )


def clear_cookie(runtime: Runtime, response: Response) -> None:
    response.delete_cookie(
        cookie_name(runtime),
        path=cookie_path(runtime),
        httponly=True,
        secure=_https(runtime),
        samesite="strict",
    )


def read_session(runtime: Runtime, request: Request) -> PageSession:
    """The caller's session, verified now (401 with a code otherwise)."""
    return open_session(runtime, request.cookies.get(cookie_name(runtime)))


def own_origin(runtime: Runtime) -> str:
    """tether's own origin (scheme://host[:port]) as browsers send it in ``Origin``."""
    return origin_of(runtime.settings.public_base_url)


def from_own_page(runtime: Runtime, request: Request) -> bool:
    """Did a page of tether's own origin send this request (as far as the browser says)?

    ``Sec-Fetch-Site`` decides when the browser sends it (every current one does). Otherwise
    ``Origin`` must be tether's own; ``Origin: null`` is what ``Referrer-Policy: no-referrer``
    makes a browser send for its own POSTs, so it is not held against the request. A client
    that sends neither header is not a browser, and not a CSRF vector.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin in (None, "null", own_origin(runtime))


def check_csrf(runtime: Runtime, request: Request, session: PageSession, sent: str | None) -> None:
    """Refuse a state change that did not come from the page itself (403, nothing changed)."""
    if not from_own_page(runtime, request):
        raise Forbidden("this request came from another site", code="CROSS_SITE_REQUEST")
    if not session.csrf_matches(sent or request.headers.get(CSRF_HEADER)):
        raise Forbidden(
            "this request could not be verified; reload the page and try again",
            code="CSRF_FAILED",
        )
