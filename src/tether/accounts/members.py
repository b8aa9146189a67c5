"""Members: the tenant's users, created by the tenant and known by the tenant's own id.

A tenant sees only its own members: another tenant's member answers exactly like one that does
not exist. Use cases (``runtime`` first) return frozen :class:`MemberView` objects; the
``session`` functions are their building blocks inside one unit of work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tether.errors import InvalidRequest, NotFound
from tether.ids import new_id
from tether.runtime import Runtime
from tether.store.models import Member, utcnow

EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9._:@\-]{1,200}$")


@dataclass(frozen=True)
class MemberView:
    id: str
    external_id: str
    created: datetime
    disabled: bool

    @classmethod
    def of(cls, member: Member) -> MemberView:
        return cls(member.id, member.external_id, member.created_at, member.disabled_at is not None)


@dataclass(frozen=True)
class MemberPage:
    items: list[MemberView]
    next_after: str | None


def ensure_member(session: Session, *, tenant_id: str, external_id: str) -> tuple[Member, bool]:
    """Create the tenant's member with ``external_id``, or return the existing one.

    Returns ``(member, created)``. Idempotent under concurrency: a racing insert that loses
    on the unique constraint reads the winner's row.
    """
    if not EXTERNAL_ID_RE.match(external_id):
        raise InvalidRequest(
            "externalId must be 1-200 characters of letters, digits and ._:@-",
            errors=[{"field": "externalId", "message": "invalid format"}],
        )
    existing = _member_by_external_id(session, tenant_id, external_id)
    if existing is not None:
        return existing, False
    member = Member(id=new_id("mem"), tenant_id=tenant_id, external_id=external_id)
    try:
        with session.begin_nested():
            session.add(member)
    except IntegrityError:
        winner = _member_by_external_id(session, tenant_id, external_id)
        if winner is None:
            raise
        return winner, False
    return member, True


def _member_by_external_id(session: Session, tenant_id: str, external_id: str) -> Member | None:
    return session.scalar(
        select(Member).where(Member.tenant_id == tenant_id, Member.external_id == external_id)
    )


def get_member(session: Session, *, member_id: str, tenant_id: str) -> Member:
    """The tenant's member; another tenant's member is indistinguishable from none."""
    member = session.get(Member, member_id)
    if member is None or member.tenant_id != tenant_id:
        raise NotFound(f"no member {member_id!r}")
    return member


def disable_member(session: Session, *, member_id: str, tenant_id: str) -> Member:
    member = get_member(session, member_id=member_id, tenant_id=tenant_id)
    if member.disabled_at is None:
        member.disabled_at = utcnow()
    return member


def create_member(runtime: Runtime, *, tenant_id: str, external_id: str) -> tuple[MemberView, bool]:
    """The tenant's member with ``external_id``, created unless it exists: ``(member, created)``."""
    with runtime.db.write() as session:
        member, created = ensure_member(session, tenant_id=tenant_id, external_id=external_id)
        return MemberView.of(member), created


def member(runtime: Runtime, *, tenant_id: str, member_id: str) -> MemberView:
    with runtime.db.read() as session:
        return MemberView.of(get_member(session, member_id=member_id, tenant_id=tenant_id))


def list_members(
    runtime: Runtime, *, tenant_id: str, limit: int = 50, after: str | None = None
) -> MemberPage:
    """The tenant's members in id order, a page at a time (``after``: the last page's
    ``next_after``)."""
    query = select(Member).where(Member.tenant_id == tenant_id).order_by(Member.id).limit(limit)
    if after:
        query = query.where(Member.id > after)
    with runtime.db.read() as session:
        members = [MemberView.of(m) for m in session.scalars(query)]
    return MemberPage(members, members[-1].id if len(members) == limit else None)
