"""Who may read what: RFC 6750 bearer tokens and SMART patient-level scopes.

A token reads only its own patient's compartment. Searching with another ``patient=``
answers 403; reading a resource id outside the compartment answers 404 (the sandbox
does not reveal whether it exists).
"""

from __future__ import annotations

import base64
import hmac
import time
from dataclasses import dataclass

from starlette.requests import Request

from tether.sandbox.store import GrantStore

SCOPE_PREFIX = "patient/"


@dataclass(frozen=True)
class Access:
    patient: str
    scope: str

    def may_read(self, rtype: str) -> bool:
        """SMART v1 ``.read``/``.*`` or v2 ``r``/``s`` permissions on ``rtype`` or ``*``."""
        for scope in self.scope.split():
            if not scope.startswith(SCOPE_PREFIX):
                continue
            target, _, permission = scope.removeprefix(SCOPE_PREFIX).partition(".")
            permission = permission.split("?", 1)[0]
            if target in ("*", rtype) and (
                permission in ("read", "*") or "r" in permission or "s" in permission
            ):
                return True
        return False


def bearer_access(request: Request, store: GrantStore, source_id: str) -> Access | str:
    """The token's access, or why it is refused.

    The reason is one of ``missing``, ``invalid``, ``expired`` or ``revoked``.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "missing"
    row = store.find_access(token.strip(), source=source_id)
    if row is None:
        return "invalid"
    if row.access_revoked:
        return "revoked"
    if row.access_expires_at <= time.time():
        return "expired"
    return Access(patient=row.patient, scope=row.scope)


def basic_access(request: Request, password: str | None, patients: set[str]) -> Access | None:
    """HTTP Basic (RFC 7617) for a BASIC source: username a patient id, the source's password.

    None when the request carries no Basic credentials or they are wrong.
    """
    if password is None:
        return None
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _, given = base64.b64decode(encoded.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if username in patients and hmac.compare_digest(given.encode(), password.encode()):
        return Access(patient=username, scope="patient/*.read")
    return None
