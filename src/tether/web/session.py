"""The member page's session: a signed, expiring cookie, re-checked on every request.

The cookie carries the member, the tenant, the API key behind the app link or member token
that opened it (none when the operator minted that), a CSRF secret, the preferred way to open
the source's sign-in (``popup`` or ``redirect``) and an expiry; it is signed with itsdangerous under
a key derived from ``TETHER_SECRET_KEY`` for this purpose only, so it cannot be forged, widened
to another member, or confused with a member token or an app link. It is ``HttpOnly``,
``SameSite=Strict`` and, when tether is served over HTTPS, ``Secure`` with the ``__Host-``
prefix (no subdomain can set or shadow it). Nothing about the session is stored server-side:
every request checks the signature and expiry, then that the member and tenant are still
enabled and the key not revoked (:func:`tether.accounts.service.require_live`, the same check
as member tokens'), so disabling either or revoking the key ends the session at the next
request.

Every state-changing request carries the CSRF secret (form field ``csrf`` or header
``X-CSRF-Token``) and must come from tether's own page (``Sec-Fetch-Site``, else ``Origin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import Response

from tether.accounts.service import Principal, require_live
from tether.errors import AuthenticationRequired, Forbidden
from tether.ids import constant_time_equals, keyed_hash, new_secret
from tether.runtime import Runtime

SESSION_TTL = 3600  # seconds; fixed (not sliding): the app opens the page again after that
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
Display = Literal["popup", "redirect"]
DISPLAYS: tuple[Display, ...] = ("popup", "redirect")


@dataclass(frozen=True)
class WebSession:
    member_id: str
    tenant_id: str
    csrf: str
    display: Display
    expires_at: datetime
    key_id: str | None = None  # the API key it derives from; None if the operator's
    # Filled in from the tenant when the session is read (never stored in the cookie).
    tenant_name: str = ""
    return_urls: tuple[str, ...] = ()

    @property
    def principal(self) -> Principal:
        return Principal(tenant_id=self.tenant_id, member_id=self.member_id, key_id=self.key_id)


def serializer(runtime: Runtime, purpose: str) -> URLSafeSerializer:
    """A signer whose key is derived from the secret key for ``purpose`` alone."""
    key = keyed_hash(runtime.secret_key, f"tether.web.{purpose}", purpose="web")
    return URLSafeSerializer(key, salt=f"tether.web.{purpose}")


def cookie_name(runtime: Runtime) -> str:
    return "__Host-tether_app" if _https(runtime) else "tether_app"


def cookie_path(runtime: Runtime) -> str:
    return "/" if _https(runtime) else "/app"  # __Host- cookies must use Path=/


def _https(runtime: Runtime) -> bool:
    return runtime.settings.public_base_url.startswith("https://")


def new_session(runtime: Runtime, principal: Principal, display: Display = "popup") -> WebSession:
    assert principal.member_id is not None
    return WebSession(
        member_id=principal.member_id,
        tenant_id=principal.tenant_id,
        csrf=new_secret(24),
        display=display,
        expires_at=runtime.clock() + timedelta(seconds=SESSION_TTL),
        key_id=principal.key_id,
    )


def set_cookie(runtime: Runtime, response: Response, session: WebSession) -> None:
    data: dict[str, Any] = {
        "m": session.member_id,
        "t": session.tenant_id,
        "c": session.csrf,
        "d": session.display,
        "e": int(session.expires_at.timestamp()),
    }
    if session.key_id is not None:
        data["k"] = session.key_id
    value = serializer(runtime, "session").dumps(data)
    response.set_cookie(
        cookie_name(runtime),
        value,
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


def read_session(runtime: Runtime, request: Request) -> WebSession:
    """The caller's session, verified now: signature, expiry, member and tenant enabled, key
    not revoked."""
    raw = request.cookies.get(cookie_name(runtime))
    if not raw:
        raise AuthenticationRequired("there is no session", code="NO_SESSION")
    try:
        data: Any = serializer(runtime, "session").loads(raw)
        member_id, tenant_id = str(data["m"]), str(data["t"])
        csrf, display, expires = str(data["c"]), str(data["d"]), int(data["e"])
        key_id = None if data.get("k") is None else str(data["k"])
    except (BadData, KeyError, TypeError, ValueError):
        raise AuthenticationRequired("the session is not valid", code="BAD_SESSION") from None
    now = runtime.clock()
    if expires <= now.timestamp():
        raise AuthenticationRequired("the session has ended", code="SESSION_ENDED")
    with runtime.db.read() as db:
        tenant = require_live(db, tenant_id=tenant_id, member_id=member_id, key_id=key_id)
        tenant_name, return_urls = tenant.name, tuple(str(u) for u in tenant.return_urls or ())
    return WebSession(
        member_id=member_id,
        tenant_id=tenant_id,
        csrf=csrf,
        display="redirect" if display == "redirect" else "popup",
        expires_at=datetime.fromtimestamp(expires, tz=now.tzinfo),
        key_id=key_id,
        tenant_name=tenant_name,
        return_urls=return_urls,
    )


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


def check_csrf(runtime: Runtime, request: Request, session: WebSession, sent: str | None) -> None:
    """Refuse a state change that did not come from the page itself (403, nothing changed)."""
    if not from_own_page(runtime, request):
        raise Forbidden("this request came from another site", code="CROSS_SITE_REQUEST")
    token = sent or request.headers.get(CSRF_HEADER) or ""
    if not token or not constant_time_equals(token, session.csrf):
        raise Forbidden(
            "this request could not be verified; reload the page and try again",
            code="CSRF_FAILED",
        )


def own_origin(runtime: Runtime) -> str:
    """tether's own origin (scheme://host[:port]) as browsers send it in ``Origin``."""
    return origin_of(runtime.settings.public_base_url)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, without a default port, lower-cased."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"
