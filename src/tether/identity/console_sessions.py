"""The operator console's session: the tenant's API key exchanged for a signed, expiring value
(the adapter keeps it in a cookie), like the member page's (:mod:`page_sessions`).

It carries the tenant, the API key's id (never the key), a CSRF secret and an expiry; it is
signed under a key derived from ``TETHER_SECRET_KEY`` for this purpose only, so it cannot be
forged or confused with a member page session. Opening it checks that the tenant is enabled and
the key not revoked, so either ends the session at the next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadData

from tether.errors import AuthenticationRequired, Forbidden
from tether.identity.credentials import authenticate
from tether.identity.liveness import require_live
from tether.identity.page_sessions import signer
from tether.identity.principals import TenantPrincipal
from tether.ids import constant_time_equals, new_secret
from tether.runtime import Runtime

CONSOLE_TTL = 3600  # seconds, fixed like the member page's


@dataclass(frozen=True)
class ConsoleSession:
    tenant_id: str
    key_id: str | None
    csrf: str
    expires_at: datetime
    tenant_name: str = ""  # filled in when opened

    @property
    def principal(self) -> TenantPrincipal:
        return TenantPrincipal(tenant_id=self.tenant_id, key_id=self.key_id)

    def csrf_matches(self, sent: str | None) -> bool:
        return bool(sent) and constant_time_equals(sent or "", self.csrf)


def sign_in(runtime: Runtime, api_key: str) -> ConsoleSession:
    """A console session for the tenant whose API key this is (401 for a bad key, 403 for a
    member token: the console is the tenant's)."""
    principal = authenticate(runtime, api_key.strip())
    if not isinstance(principal, TenantPrincipal):
        raise Forbidden("sign in with the tenant's API key, not a member token")
    return ConsoleSession(
        tenant_id=principal.tenant_id,
        key_id=principal.key_id,
        csrf=new_secret(24),
        expires_at=runtime.clock() + timedelta(seconds=CONSOLE_TTL),
    )


def seal(runtime: Runtime, session: ConsoleSession) -> str:
    data: dict[str, Any] = {
        "t": session.tenant_id,
        "c": session.csrf,
        "e": int(session.expires_at.timestamp()),
    }
    if session.key_id is not None:
        data["k"] = session.key_id
    return signer(runtime, "console").dumps(data)


def open_console(runtime: Runtime, sealed: str | None) -> ConsoleSession:
    """The session in ``sealed``, verified now (401 with a code otherwise)."""
    if not sealed:
        raise AuthenticationRequired("there is no console session", code="NO_SESSION")
    try:
        data: Any = signer(runtime, "console").loads(sealed)
        tenant_id, csrf, expires = str(data["t"]), str(data["c"]), int(data["e"])
        key_id = None if data.get("k") is None else str(data["k"])
    except (BadData, KeyError, TypeError, ValueError):
        raise AuthenticationRequired("the session is not valid", code="BAD_SESSION") from None
    now = runtime.clock()
    if expires <= now.timestamp():
        raise AuthenticationRequired("the session has ended", code="SESSION_ENDED")
    with runtime.db.read() as db:
        tenant = require_live(db, tenant_id=tenant_id, key_id=key_id)
        name = tenant.name
    return ConsoleSession(
        tenant_id=tenant_id,
        key_id=key_id,
        csrf=csrf,
        expires_at=datetime.fromtimestamp(expires, tz=now.tzinfo),
        tenant_name=name,
    )
