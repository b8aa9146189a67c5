"""App links: how a tenant hands one of its members over to the member page.

``POST /v1/members/{id}/app-links`` (API key) answers ``{url, expiresAt}`` with
``url = <public base>/app/enter#<token>``. The token sits in the URL *fragment*, which a
browser never sends to a server: it reaches no access log, no proxy and no ``Referer``. The
enter page's script reads it, erases it from the address bar and the history entry and POSTs it
to ``/app/enter``, which redeems it (:func:`redeem_app_link`) for a page session
(:mod:`tether.identity.page_sessions`). A link preview or mail scanner that fetches the URL sees
only the enter page and consumes nothing.

The token is ``{member, tenant, jti, issue event id, expiry, display}`` (plus the API key that
asked for it, so that revoking the key stops the link and the session it opens) signed with
itsdangerous under a key derived from ``TETHER_SECRET_KEY`` for this purpose alone. It lives
:data:`APP_LINK_TTL` seconds and is single use without a table of its own: issuing writes the
audit event ``web.app_link_issued`` (whose id the token carries), redeeming writes
``web.app_link_used`` with the jti while holding a lock on the member's row, and a second
redemption finds that event among the member's events after the issue (a range scan of the
``(tenant_id, id)`` index). The tenant's audit trail therefore shows every link and its use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadData
from sqlalchemy import select

from tether.accounts.members import get_member
from tether.errors import AuthenticationRequired, Conflict, Gone
from tether.identity.liveness import require_live
from tether.identity.page_sessions import (
    Display,
    PageSession,
    display_of,
    new_session,
    signer,
)
from tether.identity.principals import MemberPrincipal, TenantPrincipal
from tether.ids import new_secret
from tether.runtime import Runtime
from tether.store.models import AuditEvent, Member

APP_LINK_TTL = 600  # seconds
DEMO_LINK_TTL = 3600
ENTER_PATH = "/app/enter"
ISSUED = "web.app_link_issued"
USED = "web.app_link_used"


@dataclass(frozen=True)
class AppLink:
    url: str
    expires_at: datetime


def issue_app_link(
    runtime: Runtime,
    *,
    tenant: TenantPrincipal,
    member_id: str,
    display: Display = "popup",
    ttl: int = APP_LINK_TTL,
) -> AppLink:
    """A one-time link that opens the member page as ``member_id`` (the tenant's member)."""
    now = runtime.clock()
    expires = now + timedelta(seconds=ttl)
    jti = new_secret(16)
    with runtime.db.write() as session:
        member = get_member(session, member_id=member_id, tenant_id=tenant.tenant_id)
        if member.disabled_at is not None:
            raise Conflict("this member is disabled", code="MEMBER_DISABLED")
        if tenant.key_id is not None:
            require_live(session, tenant_id=tenant.tenant_id, key_id=tenant.key_id)
        event = AuditEvent(
            tenant_id=tenant.tenant_id,
            member_id=member.id,
            action=ISSUED,
            actor=tenant.actor,
            detail={"jti": jti, "expires": expires.isoformat()},
            at=now,
        )
        session.add(event)
        session.flush()
        event_id = event.id
    data: dict[str, Any] = {
        "m": member_id,
        "t": tenant.tenant_id,
        "j": jti,
        "a": event_id,
        "e": int(expires.timestamp()),
        "d": display,
    }
    if tenant.key_id is not None:
        data["k"] = tenant.key_id
    token = signer(runtime, "app-link").dumps(data)
    return AppLink(f"{runtime.settings.public_base_url}{ENTER_PATH}#{token}", expires)


def demo_app_link(
    runtime: Runtime, *, tenant_id: str, member_id: str, ttl: int = DEMO_LINK_TTL
) -> AppLink:
    """For ``tether demo``: a one-time link to the seeded member's page, valid ``ttl`` seconds
    (an hour by default, so it still works when the demo's user gets to it)."""
    return issue_app_link(
        runtime, tenant=TenantPrincipal(tenant_id=tenant_id), member_id=member_id, ttl=ttl
    )


def redeem_app_link(runtime: Runtime, token: str) -> PageSession:
    """Check the link and use it up; answers the session to open (410 if used or expired)."""
    try:
        data: Any = signer(runtime, "app-link").loads(token)
        member_id, tenant_id, jti = str(data["m"]), str(data["t"]), str(data["j"])
        event_id, expires, display = int(data["a"]), int(data["e"]), str(data["d"])
        key_id = None if data.get("k") is None else str(data["k"])
    except (BadData, KeyError, TypeError, ValueError):
        raise AuthenticationRequired("this link is not valid", code="BAD_APP_LINK") from None
    now = runtime.clock()
    if expires <= now.timestamp():
        raise Gone("this link has expired", code="APP_LINK_EXPIRED")
    with runtime.db.write() as session:
        # The member's row lock serialises redemptions of this member's links.
        session.get(Member, member_id, with_for_update=True)
        require_live(session, tenant_id=tenant_id, member_id=member_id, key_id=key_id)
        issued = session.get(AuditEvent, event_id)
        if (
            issued is None
            or issued.action != ISSUED
            or issued.member_id != member_id
            or (issued.detail or {}).get("jti") != jti
        ):
            raise AuthenticationRequired("this link is not valid", code="BAD_APP_LINK")
        used = session.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.tenant_id == tenant_id,
                AuditEvent.id > event_id,
                AuditEvent.member_id == member_id,
                AuditEvent.action == USED,
            )
        )
        if any((detail or {}).get("jti") == jti for detail in used):
            raise Gone("this link was already used", code="APP_LINK_USED")
        session.add(
            AuditEvent(
                tenant_id=tenant_id,
                member_id=member_id,
                action=USED,
                actor=f"member:{member_id}",
                detail={"jti": jti},
                at=now,
            )
        )
    member = MemberPrincipal(tenant_id=tenant_id, member_id=member_id, key_id=key_id)
    return new_session(runtime, member, display_of(display))
