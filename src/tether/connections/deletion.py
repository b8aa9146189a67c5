"""deleteConnection and the asynchronous deletion of the connection's data.

:func:`delete_connection` answers at once: the tokens are revoked and dropped, the grant epoch
moves on (a running sync writes nothing more), the status becomes DELETED/DELETING and the
``delete`` job is queued. :func:`run_delete` is that job: it removes the records in short
batches so other members' reads and writes go on, then marks the connection DATA_DELETED.
:func:`claim_stale_deletes` finds deletions whose job was lost, for the sweeper.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import bindparam, delete, func, select, update

from tether import events
from tether.connections import lifecycle
from tether.connections.queries import require_connection
from tether.connections.revocation import revoke_at_source, take_grant
from tether.connections.views import StatusUpdate
from tether.domain import Status, SyncStatus
from tether.identity.principals import MemberPrincipal
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.store.models import Connection, FhirResource, FhirSearchValue

log = get_logger("tether.connections")

DELETE_BATCH = 2000  # rows in the first batch (and the least in any)
MAX_BATCH = 50_000  # rows in a batch at most
TARGET_BATCH_SECONDS = 0.1  # what an adaptive batch grows towards
DELETE_STALE_SECONDS = 120


def delete_connection(
    runtime: Runtime, *, member: MemberPrincipal, connection_id: str
) -> StatusUpdate:
    """deleteConnection (idempotent): tokens revoked and dropped now, data deleted by a job."""
    now = runtime.clock()
    grant = None
    with runtime.db.write() as session:
        conn = require_connection(
            session, member_id=member.member_id, connection_id=connection_id, for_update=True
        )
        if conn.status != Status.DELETED:
            lifecycle.check(conn, Status.DELETED)
            grant = take_grant(runtime, conn)
            conn.sync_errors = []
            conn.sync_heartbeat_at = now  # the delete job's lease starts now
            lifecycle.transition(
                session,
                conn,
                Status.DELETED,
                sync_status=SyncStatus.DELETING,
                action="connection.deleted",
                actor=member.actor,
                now=now,
                detail={"grant_epoch": conn.grant_epoch},
            )
        pk, epoch = conn.id, conn.grant_epoch
        deleting = conn.sync_status == SyncStatus.DELETING
        result = StatusUpdate.of(conn)
    if deleting:
        runtime.enqueue("delete", connection_pk=pk, epoch=epoch)
    if grant is not None:
        revoke_at_source(runtime, grant, actor=member.actor)
    return result


# The ids of a connection's next batch (past ``after``, in key order), and those of a batch
# known by its range: statements with a few bound values, whatever the batch's size.
_next_ids = (
    select(FhirResource.id)
    .where(FhirResource.connection_id == bindparam("pk"), FhirResource.id > bindparam("after"))
    .order_by(FhirResource.id)
    .limit(bindparam("size"))
    .subquery()
)
_BATCH_IDS = select(FhirResource.id).where(
    FhirResource.connection_id == bindparam("pk"),
    FhirResource.id > bindparam("after"),
    FhirResource.id <= bindparam("upto"),
)


def run_delete(
    runtime: Runtime,
    *,
    connection_pk: int,
    epoch: int,
    batch: int = DELETE_BATCH,
    on_batch: Callable[[int], None] | None = None,
    adaptive: bool = True,
) -> int:
    """Delete the connection's resources in batches; mark DATA_DELETED when none are left.

    Safe to run twice and after a crash: every batch is its own short transaction, fenced by
    the epoch and the DELETING status; the last one flips the status in the same transaction
    that finds nothing left. Returns how many rows this run deleted.

    The batches walk the connection's rows in key order (each starts past the last one's
    highest id, so none re-reads what the ones before it deleted), and, ``adaptive``, grow
    from ``batch`` rows towards ``TARGET_BATCH_SECONDS`` a transaction (up to ``MAX_BATCH``
    rows): few round trips on a large connection, and no transaction long enough to hold
    other writers up. No row can appear behind the walk: a DELETING connection takes no writes.
    """
    deleted = 0
    after = 0  # the highest id deleted so far
    size = batch
    while True:
        now = runtime.clock()
        started = time.perf_counter()
        with runtime.db.write() as session:
            conn = session.get(Connection, connection_pk, with_for_update=True)
            if conn is None or conn.grant_epoch != epoch or conn.sync_status != SyncStatus.DELETING:
                return deleted
            # The batch is a key range of this connection's rows: (after, upto].
            upto = session.scalar(
                select(func.max(_next_ids.c.id)),
                {"pk": connection_pk, "after": after, "size": size},
            )
            count = 0
            if upto is not None:
                in_batch = _BATCH_IDS.params(pk=connection_pk, after=after, upto=upto)
                # The batch's search values first: they have no foreign key to cascade.
                session.execute(
                    delete(FhirSearchValue).where(FhirSearchValue.resource_pk.in_(in_batch))
                )
                result = session.execute(
                    delete(FhirResource).where(
                        FhirResource.connection_id == connection_pk,
                        FhirResource.id > after,
                        FhirResource.id <= upto,
                    )
                )
                count = int(result.rowcount)  # type: ignore[attr-defined]
                after = upto
            deleted += count
            conn.sync_heartbeat_at = now
            if count == 0:
                conn.resource_counts = {}
                conn.sync_cursor = {}
                conn.sync_heartbeat_at = None
                lifecycle.set_sync_status(
                    session,
                    conn,
                    SyncStatus.DATA_DELETED,
                    now=now,
                    actor="system:delete",
                    action="connection.data_deleted",
                    detail={"deleted": deleted},
                    stamp=True,
                    event=events.CONNECTION_DATA_DELETED,
                )
                log.info("connection data deleted", connection=connection_pk, rows=deleted)
                return deleted
        if on_batch is not None:
            on_batch(count)
        if adaptive and count == size:
            elapsed = max(time.perf_counter() - started, 1e-3)
            size = max(batch, min(MAX_BATCH, size * 2, int(size * TARGET_BATCH_SECONDS / elapsed)))


def claim_stale_deletes(runtime: Runtime, *, limit: int = 100) -> list[tuple[int, int]]:
    """DELETING connections with no live job (no heartbeat lately): ``(pk, epoch)`` to
    re-drive, each with a fresh heartbeat so the next sweep does not claim it again."""
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
