"""The one check that a credential's member, tenant and minting API key are still live.

Member tokens, the SDK's refresh tokens, the member page's app links and sessions all go
through :func:`require_live`, so revoking a key stops everything it minted, and disabling a
member or a tenant ends every credential of theirs at the next request. :func:`is_live` is the
same check for the sync's claim, which runs no sync of a disabled member or tenant.
"""

from __future__ import annotations

from sqlalchemy import exists, select, true
from sqlalchemy.orm import Session

from tether.errors import AuthenticationRequired
from tether.store.models import ApiKey, Member, Tenant

KEY_REVOKED = "the API key that issued this token was revoked"


def require_live(
    session: Session,
    *,
    tenant_id: str,
    member_id: str | None = None,
    key_id: str | None = None,
) -> Tenant:
    """The tenant, when it (and the member, and the API key that issued a credential) is live.

    Raises 401 with a code: ``MEMBER_DISABLED`` (the member is gone, disabled or not the
    tenant's), ``TENANT_DISABLED``, or ``API_KEY_REVOKED`` (the issuing key is revoked,
    unknown, or another tenant's).
    """
    # One query, not one per row: every authenticated request asks this (a member token's
    # check was three round trips).
    member_live = (
        exists().where(
            Member.id == member_id, Member.tenant_id == tenant_id, Member.disabled_at.is_(None)
        )
        if member_id is not None
        else true()
    )
    key_live = (
        exists().where(
            ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None)
        )
        if key_id is not None
        else true()
    )
    row = session.execute(
        select(Tenant, member_live, key_live).where(Tenant.id == tenant_id)
    ).first()
    if member_id is not None and (row is None or not row[1]):
        raise AuthenticationRequired(
            "this member no longer exists or is disabled", code="MEMBER_DISABLED"
        )
    if row is None or row[0].disabled_at is not None:
        raise AuthenticationRequired("this tenant is disabled", code="TENANT_DISABLED")
    if not row[2]:
        raise AuthenticationRequired(KEY_REVOKED, code="API_KEY_REVOKED")
    tenant: Tenant = row[0]
    return tenant


def is_live(session: Session, *, tenant_id: str, member_id: str | None = None) -> bool:
    """Whether :func:`require_live` would pass: the sync's claim asks before it runs."""
    try:
        require_live(session, tenant_id=tenant_id, member_id=member_id)
    except AuthenticationRequired:
        return False
    return True


def require_live_credential(
    session: Session, *, tenant_id: str, member_id: str | None = None, key_id: str | None = None
) -> Tenant:
    """:func:`require_live` for a bearer credential: a failure is a plain 401 (code
    ``UNAUTHENTICATED`` on GraphQL, like any bad credential) with the same detail."""
    try:
        return require_live(session, tenant_id=tenant_id, member_id=member_id, key_id=key_id)
    except AuthenticationRequired as exc:
        raise AuthenticationRequired(exc.detail) from None
