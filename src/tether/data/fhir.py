"""The stored FHIR resources, read and searched within a scope (one member, or a tenant).

Every query is bounded by the scope first: the member's own rows (``member_id``, the leading
column of each index), or the tenant's members. Stored JSON texts are returned as they are,
so adapters splice them into Bundles and NDJSON without parsing (``tether.data.search`` says
which index serves each parameter).

Resource ids are the sources': two connections of one member may hold the same ``Type/id``.
A read then answers the most recently stored; a search returns both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, not_, or_, select
from sqlalchemy.orm import Session, aliased

from tether.accounts.members import get_member
from tether.data.search import DateClause, Search, TokenValue
from tether.errors import NotFound
from tether.identity.principals import MemberPrincipal, Principal, TenantPrincipal
from tether.runtime import Runtime
from tether.store.models import Connection, FhirResource, FhirSearchValue, Member

R = FhirResource
V = FhirSearchValue


@dataclass(frozen=True)
class Scope:
    """Whose data a credential reads: one member's, or (``member_id`` None) the tenant's."""

    tenant_id: str
    member_id: str | None

    @property
    def owner(self) -> str:
        """Who may see what this scope started (an export): the member, or the tenant."""
        return f"member:{self.member_id}" if self.member_id else "tenant"


def scope_of(runtime: Runtime, principal: Principal, member_id: str | None = None) -> Scope:
    """The scope of a call: a member token reads its own data; the API key its tenant's, or
    one member's (``member_id``; 404 when the tenant has no such member)."""
    if isinstance(principal, MemberPrincipal):
        if member_id is not None and member_id != principal.member_id:
            raise NotFound(f"no member {member_id!r}", code="UNKNOWN_MEMBER")
        return Scope(principal.tenant_id, principal.member_id)
    assert isinstance(principal, TenantPrincipal)
    if member_id is not None:
        with runtime.db.read() as session:
            get_member(session, member_id=member_id, tenant_id=principal.tenant_id)
    return Scope(principal.tenant_id, member_id)


def _members(scope: Scope) -> ColumnElement[bool]:
    if scope.member_id is not None:
        return R.member_id == scope.member_id
    tenants = select(Member.id).where(Member.tenant_id == scope.tenant_id)
    return R.member_id.in_(tenants.scalar_subquery())


def _value_members(scope: Scope) -> ColumnElement[bool]:
    if scope.member_id is not None:
        return V.member_id == scope.member_id
    tenants = select(Member.id).where(Member.tenant_id == scope.tenant_id)
    return V.member_id.in_(tenants.scalar_subquery())


def _connections(scope: Scope, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    query = select(Connection.id).where(Connection.tenant_id == scope.tenant_id, *conditions)
    if scope.member_id is not None:
        query = query.where(Connection.member_id == scope.member_id)
    return R.connection_id.in_(query.scalar_subquery())


Found = tuple[str, str, str]  # (type, id, the stored JSON text)


@dataclass(frozen=True)
class Page:
    """One page: each resource's type, id and raw JSON text, the cursor of the next page,
    and the total when asked."""

    resources: list[Found]
    next_after: int | None
    total: int | None = None

    @classmethod
    def of(cls, rows: Sequence[Any], count: int) -> Page:
        more = len(rows) > count
        rows = rows[:count]
        next_after: int | None = rows[-1][0] if more else None
        return cls([(t, rid, data) for _, t, rid, data in rows], next_after)


def _date(column: Any, clause: DateClause) -> ColumnElement[bool]:
    """A point in time (tether's lastUpdated) against a search range."""
    p, lo, hi = clause.prefix, clause.lo, clause.hi
    match p:
        case "eq":
            return and_(column >= lo, column <= hi)
        case "ne":
            return or_(column < lo, column > hi)
        case "gt" | "sa":
            return column > hi
        case "lt" | "eb":
            return column < lo
        case "ge":
            return column >= lo
        case _:  # le
            return column <= hi


def _range(clause: DateClause) -> ColumnElement[bool]:
    """A stored range [lo, hi] (a resource's date) against a search range (FHIR §3.1.1.5.6)."""
    p, lo, hi = clause.prefix, clause.lo, clause.hi
    match p:
        case "eq":
            # lo <= hi always: the redundant bound keeps the index range on lo closed.
            return and_(V.lo >= lo, V.lo <= hi, V.hi <= hi)
        case "ne":
            return or_(V.lo < lo, V.hi > hi)
        case "gt":
            return V.hi > hi
        case "lt":
            return V.lo < lo
        case "ge":
            return V.hi >= lo
        case "le":
            return V.lo <= hi
        case "sa":
            return V.lo > hi
        case _:  # eb
            return V.hi < lo


def _token(value: TokenValue) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    if value.code is not None:
        parts.append(V.code == value.code)
    if value.system is not None:
        parts.append(V.system == value.system)
    elif value.no_system:
        parts.append(V.system.is_(None))
    return and_(*parts)


PROBE = 5000  # values counted to choose how an indexed parameter is applied


def _indexed(
    session: Session, scope: Scope, rtype: str, name: str, match: ColumnElement[bool]
) -> ColumnElement[bool]:
    """Rows found by one indexed parameter, applied the cheaper of two ways.

    A parameter that matches few resources (a code, a day) is read off its index into a
    set, ``id IN (…)``. One that matches many (a category, "after 2023") would build a large
    set for every page: the rows are instead read in storage order and each checked with one
    probe of the values by ``resource_pk``, so a page stops after ``_count`` matches. Which
    one is decided by counting at most :data:`PROBE` index entries.
    """
    where = (_value_members(scope), V.resource_type == rtype, V.name == name, match)
    probe = select(V.id).where(*where).limit(PROBE).subquery()
    many = (session.scalar(select(func.count()).select_from(probe)) or 0) >= PROBE
    if many:
        # OFFSET 0 keeps PostgreSQL from turning the probe into a hashed semi-join of every
        # matching value (its estimates of a member's share are rough): rows are read in id
        # order and the page stops early.
        probe_row = select(V.id).where(V.resource_pk == R.id, V.name == name, match).offset(0)
        return exists(probe_row)
    return R.id.in_(select(V.resource_pk).where(*where))


def _ids(scope: Scope, rtype: str, ids: list[str]) -> ColumnElement[bool]:
    """``_id``: through the unique key (connection, type, id) of the scope's connections."""
    other = aliased(FhirResource)
    connections = select(Connection.id).where(Connection.tenant_id == scope.tenant_id)
    if scope.member_id is not None:
        connections = connections.where(Connection.member_id == scope.member_id)
    found = select(other.id).where(
        other.connection_id.in_(connections.scalar_subquery()),
        other.resource_type == rtype,
        other.resource_id.in_(ids),
    )
    return R.id.in_(found)


_COLUMNS = (R.id, R.resource_type, R.resource_id, R.data)


def _filtered(session: Session, scope: Scope, search: Search) -> Select[int]:
    """The ids ``search`` matches in ``scope`` (ids only: the page's rows are read after)."""
    query: Select[int] = select(R.id).where(_members(scope), R.resource_type == search.rtype)
    for ids in search.ids:
        query = query.where(_ids(scope, search.rtype, ids))
    for clause in search.last_updated:
        query = query.where(_date(R.changed_at, clause))
    for patients in search.patients:
        query = query.where(_connections(scope, Connection.patient_id.in_(patients)))
    for sources in search.sources:
        query = query.where(_connections(scope, Connection.data_source_id.in_(sources)))
    for name, tokens in search.tokens:
        match = or_(*(_token(t) for t in tokens))
        query = query.where(_indexed(session, scope, search.rtype, name, match))
    for name, clauses in search.dates:
        match = or_(*(_range(c) for c in clauses))
        query = query.where(_indexed(session, scope, search.rtype, name, match))
    return query


def search_resources(runtime: Runtime, scope: Scope, search: Search) -> Page:
    """One page of ``search`` within ``scope``, in storage order (keyset on the row id)."""
    with runtime.db.read() as session:
        query = _filtered(session, scope, search)
        total = _count(session, query) if search.total or search.summary_count else None
        if search.summary_count:
            return Page([], None, total)
        if search.after is not None:
            query = query.where(R.id > search.after)
        # The page's ids first (from the indexes alone where the engine can), then only
        # those rows' JSON: a search that narrows thousands of rows reads 50 documents.
        ids = session.scalars(query.order_by(*storage_order(scope)).limit(search.count + 1)).all()
        rows = session.execute(select(*_COLUMNS).where(R.id.in_(ids)).order_by(R.id)).all()
    page = Page.of(rows, search.count)
    return Page(page.resources, page.next_after, total)


def storage_order(scope: Scope) -> tuple[Any, ...]:
    """The order of a page: row id. For one member it is spelled as the member index's
    order, which is the same order (member and type are fixed) but tells PostgreSQL to walk
    that index: by the primary key it would scan every other member's rows first."""
    if scope.member_id is not None:
        return (R.member_id, R.resource_type, R.id)
    return (R.id,)


def _count(session: Session, query: Select[int]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def read_resource(runtime: Runtime, scope: Scope, rtype: str, rid: str) -> str:
    """The stored JSON of ``rtype/rid`` in scope (404 otherwise)."""
    with runtime.db.read() as session:
        data = session.scalar(
            select(R.data)
            .where(_members(scope), R.resource_type == rtype, R.resource_id == rid)
            .order_by(R.changed_at.desc(), R.id.desc())
            .limit(1)
        )
    if data is None:
        raise NotFound(f"no {rtype}/{rid}", code="UNKNOWN_RESOURCE")
    return data


def everything(
    runtime: Runtime,
    scope: Scope,
    patient_id: str,
    *,
    types: list[str] | None,
    since: DateClause | None,
    count: int,
    after: int | None,
) -> Page:
    """``Patient/{id}/$everything``: every stored resource of the connections whose patient
    ``patient_id`` is, in scope (404 when there is none), paged in storage order."""
    with runtime.db.read() as session:
        has = session.scalar(
            select(
                exists().where(
                    Connection.tenant_id == scope.tenant_id,
                    Connection.patient_id == patient_id,
                    *(
                        [Connection.member_id == scope.member_id]
                        if scope.member_id is not None
                        else []
                    ),
                )
            )
        )
        if not has:
            raise NotFound(f"no Patient/{patient_id}", code="UNKNOWN_RESOURCE")
        query = select(*_COLUMNS).where(
            _members(scope), _connections(scope, Connection.patient_id == patient_id)
        )
        if types:
            query = query.where(R.resource_type.in_(types))
        if since is not None:
            query = query.where(not_(R.changed_at.is_(None)), _date(R.changed_at, since))
        if after is not None:
            query = query.where(R.id > after)
        rows = session.execute(query.order_by(R.id).limit(count + 1)).all()
    return Page.of(rows, count)
