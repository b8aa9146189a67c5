"""Jobs of the sync: the ``sync`` task and the sweeps that re-drive it.

Thin wrappers: ids and the grant epoch in, one service call, safe to run twice.
"""

from __future__ import annotations

from tether import jobs
from tether.connections.tokens import claim_expiring_tokens, refresh_connection
from tether.errors import SourceUnavailable
from tether.runtime import Runtime
from tether.sync.run import run_sync
from tether.sync.scheduling import claim_due_syncs

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
    found = claim_expiring_tokens(runtime, limit=SWEEP_BATCH)
    for pk, sealed in found:
        runtime.enqueue("refresh", connection_id=pk, stale=sealed)
    return len(found)
