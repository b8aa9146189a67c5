"""Queries on connections: a member's own (always scoped to that member), and the narrowing
every sweep applies (enabled members of enabled tenants)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, Text, cast, select
from sqlalchemy.orm import Session

from tether.connections.lifecycle import Stated
from tether.domain import SourceType, Status, SyncStatus
from tether.errors import InvalidRequest, NotFound
from tether.store.models import Connection, DataSource, Member, SyncSchedule, Tenant

SelectT = TypeVar("SelectT", bound=Select)  # any row shape (SQLAlchemy 2.0 and 2.1 spell it apart)


class ConnectionFacts(Stated, Protocol):
    """What a view reads of a connection: a row of :data:`VIEW_COLUMNS` (or a
    :class:`~tether.store.models.Connection` with its schedule loaded). Its status and
    syncStatus are the lifecycle's (:class:`~tether.connections.lifecycle.Stated`)."""

    @property
    def id(self) -> int: ...
    @property
    def member_id(self) -> str: ...
    @property
    def data_source_id(self) -> str: ...
    @property
    def sync_errors(self) -> list[dict[str, Any]] | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def status_updated_at(self) -> datetime: ...
    @property
    def last_synced_at(self) -> datetime | None: ...
    @property
    def resource_counts(self) -> dict[str, Any] | None: ...
    @property
    def authorization_expires_at(self) -> datetime | None: ...
    @property
    def scope(self) -> str | None: ...
    @property
    def next_sync_at(self) -> datetime | None: ...


# What a view reads of a connection, as plain rows: never the sealed secrets or the sync's
# cursor (kilobytes a row; a sealed EHR access token alone is often over 1 KB), and no ORM
# object per row (a tenant's page of 50 spent more time building and reading those than in
# the database). The due time comes from the schedule (outer-joined: only CONNECTED
# connections have one).
VIEW_COLUMNS = (
    Connection.id,
    Connection.member_id,
    Connection.data_source_id,
    Connection.status,
    Connection.sync_status,
    Connection.sync_errors,
    Connection.created_at,
    Connection.status_updated_at,
    Connection.last_synced_at,
    Connection.resource_counts,
    Connection.authorization_expires_at,
    Connection.scope,
    SyncSchedule.due_at.label("next_sync_at"),
)


def _view_rows(*also: Any) -> Select:  # of VIEW_COLUMNS and ``also``
    return select(*VIEW_COLUMNS, *also).outerjoin(
        SyncSchedule, SyncSchedule.connection_id == Connection.id
    )


def connection_for(
    session: Session, *, member_id: str, connection_id: str, for_update: bool = False
) -> Connection | None:
    query = select(Connection).where(
        Connection.member_id == member_id, Connection.data_source_id == connection_id
    )
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def require_connection(
    session: Session, *, member_id: str, connection_id: str, for_update: bool = False
) -> Connection:
    conn = connection_for(
        session, member_id=member_id, connection_id=connection_id, for_update=for_update
    )
    if conn is None:
        raise _unknown(connection_id)
    return conn


def _unknown(connection_id: str) -> NotFound:
    return NotFound(f"no connection {connection_id!r}", code="UNKNOWN_CONNECTION")


def _viewed(member_id: str) -> Select:  # of VIEW_COLUMNS and DataSource; 2.0 and 2.1 spell it apart
    """The member's connection rows with their sources, for a view."""
    return (
        _view_rows(DataSource)
        .join(DataSource, DataSource.id == Connection.data_source_id)
        .where(Connection.member_id == member_id)
    )


def member_connection_rows(
    session: Session,
    *,
    member_id: str,
    status: Sequence[Status] = (),
    sync_status: Sequence[SyncStatus] = (),
    source_type: Sequence[SourceType] = (),
) -> list[tuple[ConnectionFacts, DataSource]]:
    """The member's connection rows with their sources, filtered (the read side's query)."""
    query = _viewed(member_id).order_by(Connection.created_at, Connection.id)
    if status:
        query = query.where(Connection.status.in_([s.value for s in status]))
    if sync_status:
        query = query.where(Connection.sync_status.in_([s.value for s in sync_status]))
    if source_type:
        query = query.where(DataSource.type.in_([t.value for t in source_type]))
    return [(row, row.DataSource) for row in session.execute(query)]


def member_connection_row(
    session: Session, *, member_id: str, connection_id: str
) -> tuple[ConnectionFacts, DataSource]:
    """One of the member's connection rows with its source, for a view (404 otherwise)."""
    row = session.execute(
        _viewed(member_id).where(Connection.data_source_id == connection_id)
    ).first()
    if row is None:
        raise _unknown(connection_id)
    return row, row.DataSource


SYNC_ERROR_CODE = re.compile(r"^[A-Z][A-Z_]{0,59}$")


def tenant_connection_rows(
    session: Session,
    *,
    tenant_id: str,
    status: Sequence[Status] = (),
    sync_status: Sequence[SyncStatus] = (),
    sync_error: str | None = None,
    source: str | None = None,
    member_id: str | None = None,
    external_id: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[tuple[ConnectionFacts, DataSource, str]]:
    """A page of the tenant's connection rows (keyset on ``Connection.id``), filtered, each
    with its source and the member's external id.

    ``sync_error`` matches a code inside the stored syncErrors JSON; it must look like one
    (upper case and underscores), so it can never act as a LIKE pattern."""
    # Two steps: the page's ids from the connections table alone (an index walk in id order
    # that stops after ``limit`` matches), then those rows with their member and source.
    query = select(Connection.id).order_by(Connection.id).limit(limit)
    if member_id or external_id:
        # One member: found first (by its unique keys), then its few connections by member_id,
        # instead of walking the tenant's connections for it.
        who = select(Member.id).where(Member.tenant_id == tenant_id)
        if member_id:
            who = who.where(Member.id == member_id)
        if external_id:
            who = who.where(Member.external_id == external_id)
        found = session.scalar(who)
        if found is None:
            return []
        query = query.where(Connection.member_id == found)
    else:
        query = query.where(Connection.tenant_id == tenant_id)
    if after is not None:
        query = query.where(Connection.id > after)
    if status:
        query = query.where(Connection.status.in_([s.value for s in status]))
    if sync_status:
        query = query.where(Connection.sync_status.in_([s.value for s in sync_status]))
    if source:
        query = query.where(Connection.data_source_id == source)
    if sync_error:
        if not SYNC_ERROR_CODE.match(sync_error):
            raise InvalidRequest(f"{sync_error!r} is not a sync error code", code="INVALID_FILTER")
        query = query.where(cast(Connection.sync_errors, Text).like(f'%"code": "{sync_error}"%'))
    ids = list(session.scalars(query))
    if not ids:
        return []
    rows = session.execute(
        _view_rows(Member.external_id)
        .join(Member, Member.id == Connection.member_id)
        .where(Connection.id.in_(ids))
        .order_by(Connection.id)
    ).all()
    # The page's few sources once each, not joined to every row (the driver would decode
    # their JSON settings once per row).
    sources = {
        source.id: source
        for source in session.scalars(
            select(DataSource).where(DataSource.id.in_({row.data_source_id for row in rows}))
        )
    }
    return [(row, sources[row.data_source_id], row.external_id) for row in rows]


def of_live_accounts(query: SelectT) -> SelectT:
    """``query`` over connections, narrowed to those of enabled members of enabled tenants
    (what the sweeps may act on: a disabled account's work waits until it is enabled again)."""
    return (
        query.join(Member, Member.id == Connection.member_id)
        .join(Tenant, Tenant.id == Member.tenant_id)
        .where(Member.disabled_at.is_(None), Tenant.disabled_at.is_(None))
    )
