"""Starting a new grant: the one place a connection becomes CONNECTED after an authorization.

OAuth callbacks (``establish``) and BASIC credentials (``basic``) both end here: the row is
created or locked, the move is checked against the lifecycle, a deleted connection comes back
as a fresh one, a new grant epoch starts, the secrets are sealed (by the caller's ``seal``, once
the row has its id, with the same clock reading), the status moves with an audit event, and
the first sync is queued.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tether.connections import lifecycle, schedule
from tether.connections.queries import connection_for
from tether.domain import Status, SyncStatus
from tether.runtime import Runtime
from tether.store.models import Connection, Member


def start_grant(
    runtime: Runtime,
    *,
    member_id: str,
    source_id: str,
    patient: str,
    actor: str,
    seal: Callable[[Connection, datetime], None],
    detail: dict[str, Any] | None = None,
) -> Connection:
    """CONNECTED/PENDING in a new grant epoch; raises Conflict when the lifecycle says no."""
    now = runtime.clock()
    with runtime.db.write() as session:
        conn = connection_for(
            session, member_id=member_id, connection_id=source_id, for_update=True
        )
        was_new = conn is None
        if conn is None:
            tenant_id = session.scalar(select(Member.tenant_id).where(Member.id == member_id))
            conn = Connection(
                member_id=member_id,
                tenant_id=tenant_id,
                data_source_id=source_id,
                status=Status.CONNECTED.value,
                sync_status=SyncStatus.PENDING.value,
                created_at=now,
                grant_epoch=0,
            )
            session.add(conn)
            session.flush()
        else:
            lifecycle.check(conn, Status.CONNECTED)
            if conn.status == Status.DELETED:
                # A deleted connection comes back as a fresh one: full sync, new counts.
                conn.created_at = now
                conn.resource_counts = {}
                conn.sync_cursor = {}
                conn.last_synced_at = None
            elif conn.patient_id and conn.patient_id != patient:
                conn.sync_cursor = {}  # another patient record: pull everything again
        reauthorized = not was_new and conn.status == Status.CONNECTED
        conn.grant_epoch += 1
        conn.sync_errors = []
        conn.patient_id = patient
        schedule.set_due(session, conn.id, now)  # due now: the sweep covers a lost message
        seal(conn, now)
        lifecycle.transition(
            session,
            conn,
            Status.CONNECTED,
            sync_status=SyncStatus.PENDING,
            action="connection.reauthorized" if reauthorized else "connection.authorized",
            actor=actor,
            now=now,
            was_new=was_new,
            detail={"grant_epoch": conn.grant_epoch, **(detail or {})},
        )
    trigger = "initial" if was_new else "re-established"
    runtime.enqueue(
        "sync",
        connection_pk=conn.id,
        epoch=conn.grant_epoch,
        trigger=trigger,
        tenant=conn.tenant_id,
        source=conn.data_source_id,
        requested=now.timestamp(),
    )
    return conn
