"""Job entry points of the sync: the ``sync`` and ``refresh`` tasks and the sweeps that re-drive
them. Thin: ids and the grant epoch in, one service call, safe to run twice."""

from __future__ import annotations

from tether.connections import source_health
from tether.connections.tokens import claim_expiring_tokens, refresh_connection
from tether.errors import RetryLater, SourceUnavailable
from tether.runtime import Runtime
from tether.sync.run import run_sync
from tether.sync.scheduling import claim_due_syncs

SWEEP_BATCH = 200
DUE_SYNCS_BATCH = 1000  # scheduled syncs queued per sweep (the engine orders and paces them)
HAND_OVER_TIMEOUT = 30.0  # seconds to wait for room in a full engine before retrying later


def sync(
    runtime: Runtime,
    *,
    connection_pk: int,
    epoch: int,
    trigger: str = "scheduled",
    tenant: str = "",
    source: str = "",
    requested: float | None = None,
) -> None:
    """Hand the sync to this process's engine, or run it here when there is none.
    ``requested``: when it was asked for (a run that started since then answers it)."""
    engine = runtime.syncs
    if engine is None:
        run_sync(
            runtime,
            connection_pk=connection_pk,
            epoch=epoch,
            trigger=trigger,
            requested=requested,
        )
        return
    try:
        engine.submit(
            connection_pk,
            epoch,
            trigger,
            tenant=tenant,
            source=source,
            requested=requested,
            timeout=HAND_OVER_TIMEOUT,
        )
    except TimeoutError:
        raise RetryLater(5, reason="the sync engine is full") from None


def refresh(runtime: Runtime, *, connection_pk: int, stale: str) -> None:
    try:
        refresh_connection(
            runtime, connection_pk=connection_pk, stale_sealed=stale, actor="system:sweeper"
        )
    except SourceUnavailable as exc:
        raise RetryLater(60, reason=str(exc)) from None


def due_syncs(runtime: Runtime) -> int:
    """Scheduled syncs that are due, and RETRIEVING ones whose worker stopped heartbeating."""
    # Asked for when the sweep looked, not when it finished: a run that started while it
    # claimed (a connect's own job, say) saw what the sweep saw, and answers it. Stamped after
    # the claim, such runs were repeated: 115 of 1,115 runs in a 1,000-member fleet.
    looked = runtime.clock()
    found = claim_due_syncs(runtime, limit=DUE_SYNCS_BATCH, now=looked)
    requested = looked.timestamp()
    for due in found:
        runtime.enqueue(
            "sync",
            connection_pk=due.pk,
            epoch=due.epoch,
            trigger="scheduled",
            tenant=due.tenant,
            source=due.source,
            requested=requested,
        )
    return len(found)


def expiring_tokens(runtime: Runtime) -> int:
    """Refresh access tokens before they expire (one refresh per connection: see tokens.py)."""
    found = claim_expiring_tokens(runtime, limit=SWEEP_BATCH)
    for pk, sealed in found:
        runtime.enqueue("refresh", connection_pk=pk, stale=sealed or "")
    return len(found)


def source_health_flush(runtime: Runtime) -> int:
    """Add this process's counts of source requests to the database and judge each source
    (nothing is re-driven, so it reports 0)."""
    source_health.flush(runtime)
    return 0
