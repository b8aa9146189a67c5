"""The tenant acting for one of its members: its staff in the operator console, or its server
with the API key (``/v1/members/{memberId}/connections``).

The member's own operations (sync now, disconnect, delete) take a :class:`MemberPrincipal`;
:func:`act_for_member` gives the tenant one for a member that is really its own, marked so
that the audit trail names the staff (``console:<tenant id>``), not the member.
"""

from __future__ import annotations

from tether.accounts.members import get_member
from tether.errors import NotFound
from tether.identity.principals import MemberPrincipal, TenantPrincipal
from tether.runtime import Runtime


def act_for_member(
    runtime: Runtime, *, tenant: TenantPrincipal, member_id: str, via: str = "console"
) -> MemberPrincipal:
    """A principal for ``member_id`` acting for the tenant through ``via`` (``console``, or
    ``tenant`` for its server's API key), audited as ``<via>:<tenant id>``; 404 if the member
    is not the tenant's (another tenant's member is indistinguishable from none)."""
    with runtime.db.read() as session:
        try:
            get_member(session, member_id=member_id, tenant_id=tenant.tenant_id)
        except NotFound as exc:
            raise NotFound(exc.detail, code="UNKNOWN_MEMBER") from None
    return MemberPrincipal(
        tenant_id=tenant.tenant_id,
        member_id=member_id,
        key_id=tenant.key_id,
        acting=f"{via}:{tenant.tenant_id}",
    )
