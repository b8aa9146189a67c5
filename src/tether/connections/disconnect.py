"""disconnectConnection: no more retrieval, tokens revoked and dropped, data kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from tether.connections import lifecycle
from tether.connections.queries import require_connection
from tether.connections.revocation import revoke_at_source, take_grant
from tether.connections.views import StatusUpdate
from tether.domain import Status, SyncStatus
from tether.identity.principals import MemberPrincipal
from tether.runtime import Runtime
from tether.store.models import Connection


def settle_sync_status(session: Session, conn: Connection, *, now: datetime, actor: str) -> None:
    """A sync cut short by the grant's end keeps what it had: RETRIEVED if anything arrived,
    else PENDING."""
    if conn.sync_status == SyncStatus.RETRIEVING:
        settled = SyncStatus.RETRIEVED if conn.last_synced_at else SyncStatus.PENDING
        lifecycle.set_sync_status(session, conn, settled, now=now, actor=actor)


def disconnect(runtime: Runtime, *, member: MemberPrincipal, connection_id: str) -> StatusUpdate:
    """disconnectConnection (idempotent): the grant ends, the records stay."""
    now = runtime.clock()
    grant = None
    with runtime.db.write() as session:
        conn = require_connection(
            session, member_id=member.member_id, connection_id=connection_id, for_update=True
        )
        if conn.status != Status.DISCONNECTED:
            lifecycle.check(conn, Status.DISCONNECTED)
            grant = take_grant(runtime, conn)
            settle_sync_status(session, conn, now=now, actor=member.actor)
            lifecycle.transition(
                session,
                conn,
                Status.DISCONNECTED,
                action="connection.disconnected",
                actor=member.actor,
                now=now,
                detail={"grant_epoch": conn.grant_epoch},
            )
        result = StatusUpdate.of(conn)
    if grant is not None:
        revoke_at_source(runtime, grant, actor=member.actor)
    return result
