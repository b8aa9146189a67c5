"""Retired data sources: importing the directory ends access for their connections.

A connection to a retired source becomes ACCESS_ENDED: its tokens are dropped and nothing more
is retrieved. The source is gone, so no revocation is attempted (it could only time out); the
data stays until the member deletes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from tether.connections import lifecycle
from tether.connections.disconnect import settle_sync_status
from tether.connections.revocation import take_grant
from tether.directory.files import import_file
from tether.domain import Status
from tether.runtime import Runtime
from tether.store.models import Connection

DIRECTORY_ACTOR = "system:directory"


def import_directory(
    runtime: Runtime,
    path: Path,
    *,
    on_total: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Import a directory file (validated whole first), then end access to the sources it
    retires; returns how many entries were written."""
    result = import_file(runtime, path, on_total=on_total, progress=progress)
    end_access(runtime, source_ids=result.retired)
    return result.written


def end_access(
    runtime: Runtime, *, source_ids: tuple[str, ...] | list[str], actor: str = DIRECTORY_ACTOR
) -> int:
    """Connections to the retired ``source_ids`` become ACCESS_ENDED; returns how many."""
    if not source_ids:
        return 0
    now = runtime.clock()
    live = [s.value for s in (Status.CONNECTED, Status.EXPIRED, Status.DISCONNECTED, Status.ERROR)]
    with runtime.db.write() as session:
        conns = session.scalars(
            select(Connection)
            .where(Connection.data_source_id.in_(list(source_ids)), Connection.status.in_(live))
            .with_for_update()
        ).all()
        for conn in conns:
            take_grant(runtime, conn)
            settle_sync_status(session, conn, now=now, actor=actor)
            lifecycle.transition(
                session,
                conn,
                Status.ACCESS_ENDED,
                action="connection.access_ended",
                actor=actor,
                now=now,
                detail={"reason": "the data source was retired"},
            )
    return len(conns)
