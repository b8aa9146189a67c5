"""Jobs of the sync: the ``sync`` task and the sweeps that re-drive it.

Thin wrappers: ids and the grant epoch in, one service call, safe to run twice.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tether import jobs
from tether.connections.tokens import REFRESH_AHEAD_SECONDS, refresh_connection
from tether.domain import Status
from tether.errors import SourceUnavailable
from tether.runtime import Runtime
from tether.store.models import Connection
from tether.sync.service import claim_due_syncs, run_sync

SWEEP_BATCH = 200


@jobs.task("sync", retries=5)
def sync(runtime: Runtime, *, connection_id: int, epoch: int) -> None:
    run_sync(runtime, connection_id, epoch)


@jobs.task("refresh", retries=3)
def refresh(runtime: Runtime, *, connection_id: int, stale: str) -> None:
    try:
        refresh_connection(runtime, connection_id, stale_sealed=stale, actor="system:sweeper")
    except SourceUnavailable as exc:
        raise jobs.RetryLater(60, reason=str(exc)) from None


@jobs.sweep("due-syncs")
def due_syncs(runtime: Runtime) -> int:
    """Scheduled syncs that are due, and RETRIEVING ones whose worker stopped heartbeating."""
    found = claim_due_syncs(runtime, limit=SWEEP_BATCH)
    for pk, epoch in found:
        runtime.enqueue("sync", connection_id=pk, epoch=epoch)
    return len(found)


@jobs.sweep("expiring-tokens")
def expiring_tokens(runtime: Runtime) -> int:
    """Refresh access tokens before they expire (one refresh per connection: see tokens.py)."""
    soon = runtime.clock() + timedelta(seconds=REFRESH_AHEAD_SECONDS)
    with runtime.db.read() as session:
        rows = session.execute(
            select(Connection.id, Connection.access_token)
            .where(
                Connection.status == Status.CONNECTED.value,
                Connection.refresh_token.is_not(None),
                Connection.token_expires_at <= soon,
                (Connection.refresh_lease_until.is_(None))
                | (Connection.refresh_lease_until < runtime.clock()),
            )
            .limit(SWEEP_BATCH)
        ).all()
    for pk, sealed in rows:
        runtime.enqueue("refresh", connection_id=pk, stale=sealed or "")
    return len(rows)
