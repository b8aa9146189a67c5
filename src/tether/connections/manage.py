"""disconnectConnection and deleteConnection, and the asynchronous data deletion.

Both revoke the tokens at the source (RFC 7009, where advertised; a failed revocation is
recorded in the audit trail and never blocks), drop them, and bump the grant epoch so that a
sync already running writes nothing more. Disconnect keeps the data; delete answers at once
and leaves the data to :func:`run_delete`, a job that removes it in short batches so other
members' reads and writes go on, then marks the connection DATA_DELETED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from tether.accounts.service import Principal
from tether.connections import lifecycle
from tether.connections.queries import require_connection
from tether.connections.sources import smart_client
from tether.connections.tokens import drop_tokens
from tether.domain import Status, SyncStatus
from tether.logging import get_logger
from tether.oauth import rfc7009
from tether.runtime import Runtime
from tether.sealed import connection_binding
from tether.store.models import Connection, DataSource, FhirResource

log = get_logger("tether.connections")

DELETE_BATCH = 2000
DELETE_STALE_SECONDS = 120


@dataclass(frozen=True)
class StatusUpdate:
    """``{status, statusUpdated}``: what disconnectConnection and deleteConnection answer."""

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


@dataclass(frozen=True)
class _Grant:
    pk: int
    source_id: str
    access: str | None
    refresh: str | None


def _take_grant(runtime: Runtime, conn: Connection) -> _Grant:
    """Read the plaintext tokens for revocation, then drop them from the row."""
    grant = _Grant(
        pk=conn.id,
        source_id=conn.data_source_id,
        access=runtime.vault.decrypt_optional(
            conn.access_token, binding=connection_binding(conn.id, "access_token")
        ),
        refresh=runtime.vault.decrypt_optional(
            conn.refresh_token, binding=connection_binding(conn.id, "refresh_token")
        ),
    )
    drop_tokens(conn)
    conn.grant_epoch += 1
    conn.next_sync_at = None
    conn.sync_heartbeat_at = None
    return grant


def _revoke(runtime: Runtime, grant: _Grant, actor: str) -> None:
    """RFC 7009 at the source, outside any transaction; the outcome goes to the audit log."""
    if grant.access is None and grant.refresh is None:
        return
    outcome = "not_supported"
    try:
        with runtime.db.read() as session:
            source = session.get(DataSource, grant.source_id)
        if source is not None and (source.settings or {}).get("oauth"):
            with smart_client(runtime, source) as (client, config, _base):
                if config.revocation_endpoint:
                    results = [
                        rfc7009.revoke(client, config, token=token, hint=hint)
                        for token, hint in (
                            (grant.refresh, "refresh_token"),
                            (grant.access, "access_token"),
                        )
                        if token
                    ]
                    outcome = "revoked" if all(results) else "failed"
    except Exception as exc:
        log.warning("revocation failed", connection=grant.pk, error=type(exc).__name__)
        outcome = "failed"
    with runtime.db.write() as session:
        conn = session.get(Connection, grant.pk)
        if conn is not None:
            lifecycle.audit(
                session,
                conn=conn,
                action="connection.revocation",
                actor=actor,
                now=runtime.clock(),
                detail={"outcome": outcome},
            )


def _settle_sync_status(conn: Connection) -> None:
    """A sync cut short by disconnect keeps what it had: RETRIEVED if anything arrived."""
    if conn.sync_status == SyncStatus.RETRIEVING:
        conn.sync_status = (
            SyncStatus.RETRIEVED.value if conn.last_synced_at else SyncStatus.PENDING.value
        )


def disconnect(runtime: Runtime, principal: Principal, connection_id: str) -> StatusUpdate:
    """disconnectConnection: no more retrieval, tokens revoked and dropped, data kept."""
    assert principal.member_id is not None
    now = runtime.clock()
    grant = None
    with runtime.db.write() as session:
        conn = require_connection(
            session, member_id=principal.member_id, connection_id=connection_id, for_update=True
        )
        if conn.status != Status.DISCONNECTED:  # idempotent
            lifecycle.check(conn, Status.DISCONNECTED)
            grant = _take_grant(runtime, conn)
            _settle_sync_status(conn)
            lifecycle.transition(
                session,
                conn,
                Status.DISCONNECTED,
                action="connection.disconnected",
                actor=principal.actor,
                now=now,
                detail={"grant_epoch": conn.grant_epoch},
            )
        result = StatusUpdate.of(conn)
    if grant is not None:
        _revoke(runtime, grant, principal.actor)
    return result


def delete_connection(runtime: Runtime, principal: Principal, connection_id: str) -> StatusUpdate:
    """deleteConnection: tokens revoked and dropped now, data deleted asynchronously."""
    assert principal.member_id is not None
    now = runtime.clock()
    grant = None
    with runtime.db.write() as session:
        conn = require_connection(
            session, member_id=principal.member_id, connection_id=connection_id, for_update=True
        )
        if conn.status != Status.DELETED:  # idempotent
            lifecycle.check(conn, Status.DELETED)
            grant = _take_grant(runtime, conn)
            conn.sync_errors = []
            conn.sync_heartbeat_at = now  # the delete job's lease starts now
            lifecycle.transition(
                session,
                conn,
                Status.DELETED,
                sync_status=SyncStatus.DELETING,
                action="connection.deleted",
                actor=principal.actor,
                now=now,
                detail={"grant_epoch": conn.grant_epoch},
            )
        pk, epoch = conn.id, conn.grant_epoch
        deleting = conn.sync_status == SyncStatus.DELETING
        result = StatusUpdate.of(conn)
    if deleting:
        runtime.enqueue("delete", connection_id=pk, epoch=epoch)
    if grant is not None:
        _revoke(runtime, grant, principal.actor)
    return result


def run_delete(
    runtime: Runtime,
    connection_pk: int,
    epoch: int,
    *,
    batch: int = DELETE_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Delete the connection's resources in batches; mark DATA_DELETED when none are left.

    Safe to run twice and after a crash: every batch is its own short transaction, fenced by
    the epoch and the DELETING status; the last one flips the status in the same transaction
    that finds nothing left. Returns how many rows this run deleted.
    """
    deleted = 0
    while True:
        now = runtime.clock()
        with runtime.db.write() as session:
            conn = session.get(Connection, connection_pk, with_for_update=True)
            if conn is None or conn.grant_epoch != epoch or conn.sync_status != SyncStatus.DELETING:
                return deleted
            ids = select(FhirResource.id).where(FhirResource.connection_id == connection_pk)
            result = session.execute(
                delete(FhirResource).where(FhirResource.id.in_(ids.limit(batch).scalar_subquery()))
            )
            count = int(result.rowcount or 0)  # type: ignore[attr-defined]
            deleted += count
            conn.sync_heartbeat_at = now
            if count == 0:
                conn.resource_counts = {}
                conn.sync_cursor = {}
                conn.sync_heartbeat_at = None
                conn.sync_status = SyncStatus.DATA_DELETED.value
                conn.status_updated_at = now
                lifecycle.audit(
                    session,
                    conn=conn,
                    action="connection.data_deleted",
                    actor="system:delete",
                    now=now,
                    frm=Status.DELETED,
                    to=Status.DELETED,
                    detail={"deleted": deleted},
                )
                log.info("connection data deleted", connection=connection_pk, rows=deleted)
                return deleted
        if on_batch is not None:
            on_batch(count)


def claim_stale_deletes(runtime: Runtime, *, limit: int = 100) -> list[tuple[int, int]]:
    """DELETING connections with no live job (no heartbeat lately): re-drive them."""
    now = runtime.clock()
    stale = now - timedelta(seconds=DELETE_STALE_SECONDS)
    with runtime.db.write() as session:
        rows = session.execute(
            select(Connection.id, Connection.grant_epoch)
            .where(
                Connection.sync_status == SyncStatus.DELETING.value,
                (Connection.sync_heartbeat_at.is_(None)) | (Connection.sync_heartbeat_at < stale),
            )
            .limit(limit)
        ).all()
        if rows:
            session.execute(
                update(Connection)
                .where(Connection.id.in_([r[0] for r in rows]))
                .values(sync_heartbeat_at=now)
            )
    return [(r[0], r[1]) for r in rows]


def end_access(runtime: Runtime, source_ids: list[str], *, actor: str = "system:directory") -> int:
    """Connections to retired sources become ACCESS_ENDED: tokens dropped, no retrieval.

    Called after a directory import retires sources. The source is gone, so no revocation is
    attempted (it could only time out); the data stays until the member deletes it.
    """
    if not source_ids:
        return 0
    now = runtime.clock()
    ended = 0
    live = [s.value for s in (Status.CONNECTED, Status.EXPIRED, Status.DISCONNECTED, Status.ERROR)]
    with runtime.db.write() as session:
        conns = session.scalars(
            select(Connection)
            .where(Connection.data_source_id.in_(source_ids), Connection.status.in_(live))
            .with_for_update()
        ).all()
        for conn in conns:
            _take_grant(runtime, conn)
            _settle_sync_status(conn)
            lifecycle.transition(
                session,
                conn,
                Status.ACCESS_ENDED,
                action="connection.access_ended",
                actor=actor,
                now=now,
                detail={"reason": "the data source was retired"},
            )
            ended += 1
    return ended
