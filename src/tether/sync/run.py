"""One sync run: pull a connection's patient compartment from its source into the store.

:func:`sync_connection` claims the connection (:mod:`tether.sync.claim`), fetches and stores
its resources (:mod:`tether.sync.pipeline`) and writes the outcome
(:mod:`tether.sync.outcome`); the worker's :class:`~tether.sync.engine.SyncEngine` runs hundreds
of them at once on its event loop. :func:`run_sync` runs one to the end from blocking code (the
queue's immediate mode, tests, benchmarks, the CLI). A run is safe to repeat: one while another
is alive does nothing, and so does one whose grant epoch is stale. ``syncStatus`` goes
PENDING → RETRIEVING → RETRIEVED, or ERROR with ``syncErrors``.
"""

from __future__ import annotations

import time

from tether.connections import source_health
from tether.errors import Fenced, PageError
from tether.fhir.paging import DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE
from tether.logging import get_logger
from tether.metrics import RESOURCES_WRITTEN, SOURCE_TALLY, SYNC_DURATION, SYNC_RUNS
from tether.runtime import Runtime
from tether.sync.claim import Claim, claim_sync
from tether.sync.context import run_alone
from tether.sync.outcome import SyncReport, finish_sync
from tether.sync.pipeline import SOURCE_DOWN, WHOLE_SYNC, Progress, SyncContext, pull
from tether.sync.store_process import StoreProcess

__all__ = ["SyncReport", "run_sync", "sync_connection"]

log = get_logger("tether.sync")


def run_sync(
    runtime: Runtime,
    *,
    connection_pk: int,
    epoch: int,
    trigger: str = "scheduled",
    page_size: int = DEFAULT_PAGE_SIZE,
    max_pages: int = DEFAULT_MAX_PAGES,
    processes: int = 0,
    store: bool | StoreProcess = False,
    requested: float | None = None,
) -> SyncReport | None:
    """Sync one connection for grant ``epoch`` and wait for the outcome, from blocking code
    (on an event loop of its own, in a thread of its own, so it works whatever the caller's
    thread is already running). None when there was nothing to do. ``processes``: page
    processes to start for this run, ``store``: write from a store process, one started for
    this run (True) or the caller's (a worker keeps its own: ``TETHER_SYNC_PROCESSES``,
    ``TETHER_SYNC_STORE_PROCESS``)."""
    return run_alone(
        runtime,
        lambda ctx: sync_connection(
            ctx,
            connection_pk=connection_pk,
            epoch=epoch,
            trigger=trigger,
            page_size=page_size,
            max_pages=max_pages,
            requested=requested,
        ),
        processes=processes,
        store=store,
    )


async def sync_connection(
    ctx: SyncContext,
    *,
    connection_pk: int,
    epoch: int,
    trigger: str = "scheduled",
    page_size: int = DEFAULT_PAGE_SIZE,
    max_pages: int = DEFAULT_MAX_PAGES,
    requested: float | None = None,
) -> SyncReport | None:
    """Sync one connection for grant ``epoch``; None when there was nothing to do (or the
    connection was disconnected, deleted or re-authorized while it ran). ``trigger`` is what
    asked for it (initial, scheduled, manual, re-established), kept in the sync history;
    ``requested`` when (epoch seconds): a run that started since then already answers it."""
    runtime = ctx.runtime
    claim = await ctx.blocking(
        claim_sync, runtime, connection_pk=connection_pk, epoch=epoch, requested=requested
    )
    if claim is None:
        return None
    started = time.perf_counter()
    progress = Progress()
    report: SyncReport | None = None
    try:
        await pull(ctx, claim=claim, progress=progress, page_size=page_size, max_pages=max_pages)
    except Fenced:
        log.info("sync stopped: the connection changed", connection=connection_pk)
    except Exception:
        log.exception("sync failed unexpectedly", connection=connection_pk)
        progress.failed[WHOLE_SYNC] = PageError("PATIENT_RETRIEVAL_ERROR", "unexpected failure")
        # A type read to its end may still have had pages waiting to be written when the run
        # broke: none counts as complete, so no cursor moves past what was not stored.
        progress.done.clear()
        report = await ctx.blocking(
            finish_sync, runtime, claim=claim, progress=progress, trigger=trigger
        )
    else:
        report = await ctx.blocking(_finish, runtime, claim, progress, trigger)
    SYNC_DURATION.labels(claim.slug).observe(time.perf_counter() - started)
    SYNC_RUNS.labels(claim.slug, report.status.value if report else "stopped").inc()
    RESOURCES_WRITTEN.labels(claim.slug).inc(progress.written)
    return report


def _finish(runtime: Runtime, claim: Claim, progress: Progress, trigger: str) -> SyncReport | None:
    """The outcome of a run that was not cut short, in one database thread call: source
    health first, which may hold the next sync back."""
    return finish_sync(
        runtime,
        claim=claim,
        progress=progress,
        trigger=trigger,
        degraded_backoff=_degraded(runtime, claim, progress),
    )


def _degraded(runtime: Runtime, claim: Claim, progress: Progress) -> float | None:
    """Tell source health how this sync went; when the source was down and is degraded for
    everyone, how long to wait before the next try (None: judge the sync on its own)."""
    source_down = any(e.code in SOURCE_DOWN for e in progress.failed.values())
    SOURCE_TALLY.sync_ended(claim.slug, claim.pk, source_down=source_down)
    try:
        source_health.flush(runtime, force=source_down)
        since = source_health.degraded_since(runtime, source_id=claim.slug) if source_down else None
    except Exception:  # health is advice: a failure to record it must not fail the sync
        log.exception("source health not recorded", source=claim.slug)
        return None
    if since is None:
        return None
    return source_health.backoff_seconds(since, runtime.clock())
