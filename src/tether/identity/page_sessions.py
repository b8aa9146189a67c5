"""The member page's session: a signed, expiring value (the adapter keeps it in a cookie).

It carries the member, the tenant, the API key behind the app link or member token that opened
it (none when the operator minted that), a CSRF secret, the preferred way to open the source's
sign-in (``popup`` or ``redirect``) and an expiry. It is signed with itsdangerous under a key
derived from ``TETHER_SECRET_KEY`` for this purpose only, so it cannot be forged, widened to
another member, or confused with a member token or an app link. Nothing about it is stored
server-side: :func:`open_session` checks the signature and expiry, then that the member and
tenant are still enabled and the key not revoked (:func:`~tether.identity.liveness.require_live`,
the same check as member tokens'), so disabling either or revoking the key ends the session at
the next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from itsdangerous import BadData, URLSafeSerializer

from tether.errors import AuthenticationRequired
from tether.identity.liveness import require_live
from tether.identity.principals import MemberPrincipal
from tether.ids import constant_time_equals, keyed_hash, new_secret
from tether.runtime import Runtime

SESSION_TTL = 3600  # seconds; fixed (not sliding): the app opens the page again after that
Display = Literal["popup", "redirect"]
DISPLAYS: tuple[Display, ...] = ("popup", "redirect")


def display_of(value: object) -> Display:
    """``redirect`` when asked for, else ``popup`` (the default of every entry point)."""
    return "redirect" if value == "redirect" else "popup"


@dataclass(frozen=True)
class PageSession:
    member_id: str
    tenant_id: str
    csrf: str
    display: Display
    expires_at: datetime
    key_id: str | None = None  # the API key it derives from; None if the operator's
    # Filled in from the tenant when the session is opened (never part of the signed value).
    tenant_name: str = ""
    return_urls: tuple[str, ...] = ()

    @property
    def principal(self) -> MemberPrincipal:
        return MemberPrincipal(
            tenant_id=self.tenant_id, member_id=self.member_id, key_id=self.key_id
        )

    def csrf_matches(self, sent: str | None) -> bool:
        return bool(sent) and constant_time_equals(sent or "", self.csrf)


def signer(runtime: Runtime, purpose: str) -> URLSafeSerializer:
    """A signer whose key is derived from the secret key for ``purpose`` alone."""
    key = keyed_hash(runtime.secret_key, f"tether.web.{purpose}", purpose="web")
    return URLSafeSerializer(key, salt=f"tether.web.{purpose}")


def new_session(
    runtime: Runtime, member: MemberPrincipal, display: Display = "popup"
) -> PageSession:
    return PageSession(
        member_id=member.member_id,
        tenant_id=member.tenant_id,
        csrf=new_secret(24),
        display=display,
        expires_at=runtime.clock() + timedelta(seconds=SESSION_TTL),
        key_id=member.key_id,
    )


def seal_session(runtime: Runtime, session: PageSession) -> str:
    """The signed value to keep in the browser."""
    data: dict[str, Any] = {
        "m": session.member_id,
        "t": session.tenant_id,
        "c": session.csrf,
        "d": session.display,
        "e": int(session.expires_at.timestamp()),
    }
    if session.key_id is not None:
        data["k"] = session.key_id
    return signer(runtime, "session").dumps(data)


def open_session(runtime: Runtime, sealed: str | None) -> PageSession:
    """The session in ``sealed``, verified now: signature, expiry, member and tenant enabled,
    key not revoked (401 with a code otherwise)."""
    if not sealed:
        raise AuthenticationRequired("there is no session", code="NO_SESSION")
    try:
        data: Any = signer(runtime, "session").loads(sealed)
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
    return PageSession(
        member_id=member_id,
        tenant_id=tenant_id,
        csrf=csrf,
        display=display_of(display),
        expires_at=datetime.fromtimestamp(expires, tz=now.tzinfo),
        key_id=key_id,
        tenant_name=tenant_name,
        return_urls=return_urls,
    )
