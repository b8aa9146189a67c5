"""Who is calling: a tenant (its API key) or one member of a tenant (a member credential).

Services take the kind they need: a :class:`MemberPrincipal` for the member's own operations,
a :class:`TenantPrincipal` for the tenant's server. :func:`member_only` and
:func:`tenant_only` are the one place that says "this needs the other kind of credential".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tether.errors import Forbidden

NEEDS_MEMBER = "this operation needs a member token, not an API key"
NEEDS_TENANT = "this operation needs the tenant's API key, not a member token"


@dataclass(frozen=True)
class TenantPrincipal:
    """The tenant's server, by the API key it presented (``key_id``; None when the operator
    acts for the tenant, as ``tether demo`` and the CLI do)."""

    tenant_id: str
    key_id: str | None = None
    is_member: ClassVar[bool] = False

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"tenant:{self.tenant_id}"


@dataclass(frozen=True)
class MemberPrincipal:
    """One member of a tenant. ``key_id`` is the API key that minted the member's credential
    (revoking it ends the credential); None for what the operator minted."""

    tenant_id: str
    member_id: str
    key_id: str | None = None
    # Set when the tenant's staff act for the member (the operator console): the audit trail
    # then names them, not the member.
    acting: str | None = None
    is_member: ClassVar[bool] = True

    @property
    def actor(self) -> str:
        return self.acting or f"member:{self.member_id}"


Principal = TenantPrincipal | MemberPrincipal


def member_only(principal: Principal) -> MemberPrincipal:
    """The member behind the call, or 403: an API key cannot act as one of its members."""
    if not isinstance(principal, MemberPrincipal):
        raise Forbidden(NEEDS_MEMBER)
    return principal


def tenant_only(principal: Principal) -> TenantPrincipal:
    """The tenant behind the call, or 403: a member token cannot act for the tenant."""
    if not isinstance(principal, TenantPrincipal):
        raise Forbidden(NEEDS_TENANT)
    return principal
