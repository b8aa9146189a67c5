"""What a sync runs with on an event loop: HTTP clients, the sources' budgets, database threads.

:class:`LoopContext` is the :class:`~tether.sync.pipeline.SyncContext` of one event loop: the
worker's :class:`~tether.sync.engine.SyncEngine` keeps one for all its syncs, and
:func:`run_alone` builds one for a single run called from blocking code.

Every FHIR request of every sync goes through the context's one connection pool
(:mod:`tether.sync.source_http`), counted as its source's, inside the source's budget.
Blocking work (the database, token refreshes, which use the synchronous HTTP client) runs in a
bounded thread pool, in the caller's ``contextvars`` context so logs and traces stay attached
to the sync; pages are parsed, checked and serialised in the worker's page processes
(:func:`~tether.sync.checks.prepare_page`), or in those threads when there are none; pages are
written by the store process (:mod:`tether.sync.store_process`, a worker's default on SQLite),
or in those threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import multiprocessing
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

from tether.runtime import Runtime
from tether.store.models import utcnow
from tether.store.sqlite import database_file
from tether.sync import store_process
from tether.sync.budgets import Budget, Budgets, make_budgets
from tether.sync.checks import PreparedPage, PreparedRow, prepare_page
from tether.sync.children import exit_with_parent
from tether.sync.claim import Claim
from tether.sync.fenced_writes import write_rows
from tether.sync.pipeline import WRITE_BATCH
from tether.sync.source_http import SourceHttp, SourceRequests

P = ParamSpec("P")
T = TypeVar("T")

LEASE_MARGIN = 10.0  # seconds a shared budget slot outlives the longest request
# Requests in flight from one event loop, all sources together (a connection each): 128 at
# 200 ms a request is 640 requests a second, about 2,900 syncs of 13 requests a minute
# (sources' own budgets are usually far lower).
HTTP_POOL = 128
# The most of them one data source may hold, whatever its budget: a source that stalls
# keeps every request it was let send until the timeout, and without this one source with a
# large budget would hold them all and make every other source's requests wait behind it.
# The engine keeps the same share of its run slots (tether.sync.engine).
SOURCE_SHARE = 0.75


class LoopContext:
    """A :class:`~tether.sync.pipeline.SyncContext` bound to the running event loop."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        executor: ThreadPoolExecutor,
        budgets: Budgets | None = None,
        max_connections: int = HTTP_POOL,
        pages: Executor | None = None,
        store: store_process.StoreProcess | None = None,
    ) -> None:
        self.runtime = runtime
        self.budgets = budgets or make_budgets(
            runtime.settings.shared_state_url,
            lease=runtime.settings.http_timeout + LEASE_MARGIN,
            process_cap=max(1, int(max_connections * SOURCE_SHARE)),
        )
        self._executor = executor
        self._pages = pages or executor  # where pages are prepared: a process pool, or threads
        self._store = store  # where pages are written: the store process, or (None) threads
        # Writes a sync may have queued at once. In threads one: two would race for the
        # connection's row, and the later batch could commit first. The store process writes
        # in the order it is sent.
        self.write_depth = store_process.DEPTH if store is not None else 1
        self.write_batch = store_process.BATCH if store is not None else WRITE_BATCH
        self.writes_waiting = 0  # handed to the writer and not yet written (this loop's)
        self.http = SourceHttp(connections=max_connections, timeout=runtime.outbound_timeout)
        # Requests beyond the pool's connections wait here, inside their source's budget
        # slot's queue, not inside the pool: a request let through always finds a connection.
        # And before that, beyond their source's share of them (SOURCE_SHARE, the budgets'
        # cap on this process's requests to one source), holding neither a shared budget
        # slot nor one of the connections.
        self._requests = asyncio.Semaphore(max_connections)

    @asynccontextmanager
    async def request_slot(self, source: str, budget: Budget) -> AsyncIterator[SourceRequests]:
        async with self.budgets.slot(source, budget, self._requests):
            yield self.http.source(source)

    def blocking(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self._executor, call)

    def write(self, claim: Claim, rows: Sequence[PreparedRow]) -> Awaitable[Counter[str]]:
        future = self._write(claim, rows)
        self.writes_waiting += 1
        future.add_done_callback(self._written)
        return future

    def _written(self, _: asyncio.Future[Counter[str]]) -> None:
        self.writes_waiting -= 1

    def _write(self, claim: Claim, rows: Sequence[PreparedRow]) -> asyncio.Future[Counter[str]]:
        runtime = self.runtime
        if self._store is None:
            return asyncio.ensure_future(
                self.blocking(
                    write_rows,
                    runtime.db,
                    connection_pk=claim.pk,
                    epoch=claim.epoch,
                    member_id=claim.member_id,
                    rows=rows,
                    clock=runtime.clock,
                )
            )
        offset = None if runtime.clock is utcnow else (runtime.clock() - utcnow()).total_seconds()
        return asyncio.wrap_future(
            self._store.submit(
                connection_pk=claim.pk,
                epoch=claim.epoch,
                member_id=claim.member_id,
                rows=rows,
                clock_offset=offset,
            )
        )

    def prepare(
        self, body: bytes, *, rtype: str, patient_id: str, source: str
    ) -> Awaitable[PreparedPage]:
        call = functools.partial(
            prepare_page, body, rtype=rtype, patient_id=patient_id, source=source
        )
        return asyncio.get_running_loop().run_in_executor(self._pages, call)

    async def aclose(self) -> None:
        """Close the connection pool and the budgets' store."""
        await self.http.aclose()
        await self.budgets.aclose()


def uses_store_process(runtime: Runtime) -> bool:
    """Whether a worker writes pages from a store process (``TETHER_SYNC_STORE_PROCESS``, on
    a SQLite file)."""
    return runtime.settings.sync_store_process and database_file(runtime.db.url) is not None


def page_processes(count: int) -> ProcessPoolExecutor | None:
    """``count`` processes to prepare pages in (None for none). Spawned, never forked (the
    worker has threads), and each exits when the process that started it is gone."""
    if count < 1:
        return None
    return ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


@asynccontextmanager
async def loop_context(
    runtime: Runtime,
    *,
    db_threads: int,
    processes: int,
    store: bool | store_process.StoreProcess = False,
) -> AsyncIterator[LoopContext]:
    """A :class:`LoopContext` on the running loop with its database threads, page processes
    and store process (``store``: True for one of its own, or one the caller keeps), all
    closed when the block ends (but the caller's)."""
    writer = store_process.StoreProcess(runtime.db.url) if store is True else store or None
    pages = page_processes(processes)
    executor = ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="sync-db")
    try:
        ctx = LoopContext(runtime, executor=executor, pages=pages, store=writer)
        try:
            yield ctx
        finally:
            await ctx.aclose()
    finally:
        if store is True and writer is not None:
            await asyncio.to_thread(writer.close)
        executor.shutdown(wait=True, cancel_futures=True)
        if pages is not None:
            pages.shutdown(wait=True, cancel_futures=True)


def run_alone(
    runtime: Runtime,
    work: Callable[[LoopContext], Awaitable[T]],
    *,
    processes: int = 0,
    store: bool | store_process.StoreProcess = False,
) -> T:
    """Run ``work`` to the end on an event loop of its own, in a thread of its own (so the
    caller's thread may already run a loop), in the caller's context; its result or error.
    ``processes``: page processes to start for it (none: pages are prepared in threads);
    ``store``: write pages from a store process (True: one started for it; else threads)."""

    async def main() -> T:
        async with loop_context(runtime, db_threads=2, processes=processes, store=store) as ctx:
            return await work(ctx)

    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-loop") as thread:
        return thread.submit(context.run, asyncio.run, main()).result()
