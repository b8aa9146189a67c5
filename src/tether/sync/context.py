"""What a sync runs with on an event loop: HTTP clients, the sources' budgets, database threads.

:class:`LoopContext` is the :class:`~tether.sync.pipeline.SyncContext` of one event loop: the
worker's :class:`~tether.sync.engine.SyncEngine` keeps one for all its syncs, and
:func:`run_alone` builds one for a single run called from blocking code.

Every FHIR request of every sync goes through one connection pool (``httpx.AsyncClient`` per
source on a shared ``AsyncHTTPTransport``), counted as its source's by
:class:`~tether.metrics.MeteredAsyncTransport`. Blocking work (the database, token refreshes,
which use the synchronous HTTP client) runs in a bounded thread pool, in the caller's
``contextvars`` context so logs and traces stay attached to the sync.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import httpx

from tether.metrics import MeteredAsyncTransport
from tether.runtime import Runtime
from tether.sync.budgets import Budgets, make_budgets

P = ParamSpec("P")
T = TypeVar("T")

USER_AGENT = "tether/0.1"
LEASE_MARGIN = 10.0  # seconds a shared budget slot outlives the longest request


class LoopContext:
    """A :class:`~tether.sync.pipeline.SyncContext` bound to the running event loop."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        executor: ThreadPoolExecutor,
        budgets: Budgets | None = None,
        max_connections: int = 100,
    ) -> None:
        self.runtime = runtime
        self.budgets = budgets or make_budgets(
            runtime.settings.shared_state_url,
            lease=runtime.settings.http_timeout + LEASE_MARGIN,
        )
        self._executor = executor
        self._pool = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
        )
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, source: str) -> httpx.AsyncClient:
        client = self._clients.get(source)
        if client is None:
            client = self._clients[source] = httpx.AsyncClient(
                transport=MeteredAsyncTransport(self._pool, source=source),
                timeout=httpx.Timeout(self.runtime.settings.http_timeout, connect=10.0),
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            )
        return client

    def blocking(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def aclose(self) -> None:
        """Close the connection pool and the budgets' store (the per-source clients only
        wrap the pool)."""
        await self._pool.aclose()
        await self.budgets.aclose()


def run_alone(runtime: Runtime, work: Callable[[LoopContext], Awaitable[T]]) -> T:
    """Run ``work`` to the end on an event loop of its own, in a thread of its own (so the
    caller's thread may already run a loop), in the caller's context; its result or error."""

    async def main() -> T:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sync-db") as executor:
            ctx = LoopContext(runtime, executor=executor)
            try:
                return await work(ctx)
            finally:
                await ctx.aclose()

    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-loop") as thread:
        return thread.submit(context.run, asyncio.run, main()).result()
