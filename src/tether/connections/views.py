"""The read side of connections: getMemberConnections, one connection, and what the lifecycle
operations answer, as frozen view objects.

REST, GraphQL, the member page, the operator console and the CLI (through REST) render these;
none of them reads a connection row itself. Every query is scoped to one member, or (the
tenant's view, :func:`tenant_connections`) to one tenant's members.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from tether.connections import lifecycle
from tether.connections.queries import (
    ConnectionFacts,
    member_connection_row,
    member_connection_rows,
    tenant_connection_rows,
)
from tether.connections.sources import not_shared_types
from tether.domain import Category, SourceType, Status, SyncStatus
from tether.identity.principals import MemberPrincipal, TenantPrincipal
from tether.runtime import Runtime
from tether.store.models import Connection, DataSource

# The moves a member can ask for; a view says which of them the lifecycle allows now.
MEMBER_MOVES = (Status.CONNECTED, Status.DISCONNECTED, Status.DELETED)


@dataclass(frozen=True)
class Coding:
    system: str | None
    code: str | None
    display: str | None


@dataclass(frozen=True)
class CodeableConcept:
    """A sync error: ``{text, coding: [{system, code, display}]}``."""

    text: str | None
    coding: tuple[Coding, ...]

    @classmethod
    def of(cls, value: Mapping[str, Any]) -> CodeableConcept:
        return cls(
            text=value.get("text"),
            coding=tuple(
                Coding(c.get("system"), c.get("code"), c.get("display"))
                for c in value.get("coding") or ()
                if isinstance(c, Mapping)
            ),
        )


@dataclass(frozen=True)
class ConnectionView:
    """A MemberConnection (DESIGN.md), plus resource counts, the next scheduled sync and the
    member's moves that the lifecycle allows now."""

    id: str  # the data source's id: the connectionId
    name: str
    category: Category
    type: SourceType
    status: Status
    sync_status: SyncStatus
    sync_errors: tuple[CodeableConcept, ...]
    created: datetime
    status_updated: datetime
    last_synced: datetime | None
    resource_counts: Mapping[str, int]
    next_sync: datetime | None  # only while CONNECTED
    allowed: frozenset[Status]
    # When the grant ends at the source, where it says so (only while CONNECTED).
    authorization_expires: datetime | None = None
    # The source's resource types the member did not share (a narrower grant than asked).
    not_shared: tuple[str, ...] = ()

    @classmethod
    def of(cls, conn: ConnectionFacts, source: DataSource) -> ConnectionView:
        status = Status(conn.status)
        connected = status == Status.CONNECTED
        return cls(
            id=source.id,
            name=source.name,
            category=Category(source.category),
            type=SourceType(source.type),
            status=status,
            sync_status=SyncStatus(conn.sync_status),
            sync_errors=tuple(CodeableConcept.of(e) for e in conn.sync_errors or ()),
            created=conn.created_at,
            status_updated=conn.status_updated_at,
            last_synced=conn.last_synced_at,
            resource_counts={k: int(v) for k, v in (conn.resource_counts or {}).items()},
            next_sync=conn.next_sync_at if connected else None,
            allowed=_member_moves(conn.status, conn.sync_status),
            authorization_expires=conn.authorization_expires_at if connected else None,
            not_shared=not_shared_types(source, conn.scope) if conn.scope else (),
        )


class _State(NamedTuple):
    status: str
    sync_status: str


@cache
def _member_moves(status: str, sync_status: str) -> frozenset[Status]:
    """The member's moves the lifecycle allows from this state (a few dozen states; every
    row of every view asks)."""
    return frozenset(
        to for to in MEMBER_MOVES if lifecycle.refusal(_State(status, sync_status), to) is None
    )


@dataclass(frozen=True)
class StatusUpdate:
    """``{status, statusUpdated}`` (and the syncStatus): what disconnectConnection and
    deleteConnection answer."""

    connection_id: str
    status: Status
    sync_status: SyncStatus
    status_updated: datetime

    @classmethod
    def of(cls, conn: Connection) -> StatusUpdate:
        return cls(
            conn.data_source_id,
            Status(conn.status),
            SyncStatus(conn.sync_status),
            conn.status_updated_at,
        )


def member_connections(
    runtime: Runtime,
    *,
    member: MemberPrincipal,
    status: Sequence[Status] = (),
    sync_status: Sequence[SyncStatus] = (),
    source_type: Sequence[SourceType] = (),
) -> list[ConnectionView]:
    """getMemberConnections: the member's connections, oldest first, filtered."""
    with runtime.db.read() as session:
        rows = member_connection_rows(
            session,
            member_id=member.member_id,
            status=status,
            sync_status=sync_status,
            source_type=source_type,
        )
        return [ConnectionView.of(conn, source) for conn, source in rows]


def member_connection(
    runtime: Runtime, *, member: MemberPrincipal, connection_id: str
) -> ConnectionView:
    """One of the member's connections (404 ``UNKNOWN_CONNECTION`` otherwise)."""
    with runtime.db.read() as session:
        conn, source = member_connection_row(
            session, member_id=member.member_id, connection_id=connection_id
        )
        return ConnectionView.of(conn, source)


MAX_TENANT_PAGE = 200


@dataclass(frozen=True)
class TenantConnectionView:
    """One connection as the tenant sees it: whose it is, and the member's view of it."""

    pk: int  # the keyset cursor (``after``)
    member_id: str
    external_id: str
    connection: ConnectionView


@dataclass(frozen=True)
class TenantConnectionPage:
    items: list[TenantConnectionView]
    next_after: int | None  # pass as ``after`` for the next page; None on the last


def tenant_connections(
    runtime: Runtime,
    *,
    tenant: TenantPrincipal,
    status: Sequence[Status] = (),
    sync_status: Sequence[SyncStatus] = (),
    sync_error: str | None = None,
    source: str | None = None,
    member_id: str | None = None,
    external_id: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> TenantConnectionPage:
    """The tenant's connections across its members, oldest first, a page at a time
    (keyset on the row id), filtered; ``sync_error`` is a sync error code."""
    limit = max(1, min(limit, MAX_TENANT_PAGE))
    with runtime.db.read() as session:
        rows = tenant_connection_rows(
            session,
            tenant_id=tenant.tenant_id,
            status=status,
            sync_status=sync_status,
            sync_error=sync_error,
            source=source,
            member_id=member_id,
            external_id=external_id,
            after=after,
            limit=limit,
        )
        items = [
            TenantConnectionView(conn.id, conn.member_id, external_id, ConnectionView.of(conn, src))
            for conn, src, external_id in rows
        ]
    return TenantConnectionPage(items, items[-1].pk if len(items) == limit else None)
