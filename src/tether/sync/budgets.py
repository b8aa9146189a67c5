"""Per-source request budgets: how many FHIR requests a data source gets at once and per minute.

Real sources throttle (one large EHR vendor allows 250 requests a minute per base URL, then
refuses the rest of the minute), so every request a sync sends to a source's FHIR API is sent
inside :meth:`Budgets.slot`, which waits until the source has

- fewer than ``max_concurrent_requests`` requests in flight, and then
- fewer than ``max_requests_per_minute`` requests sent in the last 60 seconds (a moving window:
  whatever minute the source counts in, it never sees more).

The concurrency slot is taken first and the minute's count last, right before the request goes
out, so a count is never spent on a request still waiting for a slot.

Both limits come from the directory entry (:class:`Budget`). With Redis configured
(``TETHER_RATE_LIMIT_URL``, or the queue's ``redis://``) every worker process shares them:
concurrency as a lease set per source (a sorted set scored by lease expiry, so a killed
worker's slots come back after ``lease`` seconds) and the minute's count as the ``limits``
library's moving window. Without Redis they hold within this process. Waiting is never a
failure: a source over its budget makes its syncs slower, not wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from tether.domain import DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_REQUESTS_PER_MINUTE
from tether.logging import get_logger

log = get_logger("tether.sync")

KEY_PREFIX = "tether:budget"
POLL_MIN = 0.01  # seconds between tries for a shared slot, doubling up to POLL_MAX
POLL_MAX = 0.25


@dataclass(frozen=True, slots=True)
class Budget:
    """A source's limits (directory: ``max_concurrent_requests``, ``max_requests_per_minute``:
    ``per_window`` requests in any ``window`` seconds, a minute outside tests)."""

    max_concurrent: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    per_window: int = DEFAULT_MAX_REQUESTS_PER_MINUTE
    window: int = 60

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Budget:
        """The budget a data source's stored settings give (defaults for what is not set)."""
        return cls(
            max_concurrent=int(
                settings.get("max_concurrent_requests", DEFAULT_MAX_CONCURRENT_REQUESTS)
            ),
            per_window=int(
                settings.get("max_requests_per_minute", DEFAULT_MAX_REQUESTS_PER_MINUTE)
            ),
        )


class Budgets(Protocol):
    def slot(
        self, source: str, budget: Budget, gate: asyncio.Semaphore | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Inside it, one request to ``source`` may be in flight (see :meth:`_Limits.slot`)."""
        ...

    async def aclose(self) -> None: ...


class _Limits:
    """What both kinds share: this process's cap on its own requests to a source (so waiters
    queue on a semaphore instead of polling a shared store) and the minute's moving window.

    ``process_cap``: the most requests this process has in flight to any one source, whatever
    its budget allows (the sync engine's share of its connections, so that a source that
    stalls cannot hold them all; :mod:`tether.sync.context`)."""

    def __init__(self, limiter: MovingWindowRateLimiter, *, process_cap: int | None) -> None:
        self._limiter = limiter
        self._process_cap = process_cap
        self._local: dict[tuple[str, int], asyncio.Semaphore] = {}

    def _semaphore(self, source: str, budget: Budget) -> asyncio.Semaphore:
        key = (source, budget.max_concurrent)
        semaphore = self._local.get(key)
        if semaphore is None:
            cap = budget.max_concurrent
            if self._process_cap is not None:
                cap = min(cap, self._process_cap)
            semaphore = self._local[key] = asyncio.Semaphore(cap)
        return semaphore

    def concurrent(self, source: str, budget: Budget) -> AbstractAsyncContextManager[None]:
        """One of the source's concurrent requests (the minute's count not yet spent)."""
        raise NotImplementedError

    async def try_minute(self, source: str, budget: Budget) -> float | None:
        """Count one request in the source's window: None when it may go now, else the
        seconds until the window has room (nothing counted)."""
        item = RateLimitItemPerSecond(budget.per_window, budget.window)
        if await self._limiter.hit(item, KEY_PREFIX, source):
            return None
        stats = await self._limiter.get_window_stats(item, KEY_PREFIX, source)
        return max(POLL_MIN, stats.reset_time - time.time()) + random.uniform(0, 0.05)

    @asynccontextmanager
    async def slot(
        self, source: str, budget: Budget, gate: asyncio.Semaphore | None = None
    ) -> AsyncIterator[None]:
        """Inside it, one request to ``source`` may be in flight: a concurrent slot, then
        (holding ``gate``, this process's cap on all requests, when given) the window's
        count, spent right before the request goes out. Waiting for the window releases
        ``gate``, so a source out of budget holds none of the others' requests."""
        async with self.concurrent(source, budget):
            while True:
                async with gate or contextlib.nullcontext():
                    wait = await self.try_minute(source, budget)
                    if wait is None:
                        yield
                        return
                await asyncio.sleep(wait)


class LocalBudgets(_Limits):
    """Budgets held within this process (and this event loop)."""

    def __init__(self, *, process_cap: int | None = None) -> None:
        super().__init__(MovingWindowRateLimiter(MemoryStorage()), process_cap=process_cap)

    def concurrent(self, source: str, budget: Budget) -> AbstractAsyncContextManager[None]:
        return self._semaphore(source, budget)

    async def aclose(self) -> None:
        return None


# Take one of `limit` slots: drop expired leases, then add ours if there is room. Scored by
# the lease's expiry on the server's clock, so processes' clocks need not agree.
_ACQUIRE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
  return 1
end
return 0
"""


class RedisBudgets(_Limits):
    """Budgets every process sharing ``url`` (a Redis) holds together."""

    def __init__(self, url: str, *, lease: float, process_cap: int | None = None) -> None:
        import redis.asyncio as redis_asyncio

        super().__init__(
            MovingWindowRateLimiter(RedisStorage(f"async+{url}", implementation="redispy")),
            process_cap=process_cap,
        )
        self._redis = redis_asyncio.Redis.from_url(url)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._lease = lease

    @asynccontextmanager
    async def concurrent(self, source: str, budget: Budget) -> AsyncIterator[None]:
        key = f"{KEY_PREFIX}:concurrent:{source}"
        token = uuid.uuid4().hex
        async with self._semaphore(source, budget):
            shared = await self._take(key, budget, token)
            try:
                yield
            finally:
                if shared:
                    with contextlib.suppress(Exception):
                        await self._redis.zrem(key, token)

    async def try_minute(self, source: str, budget: Budget) -> float | None:
        try:
            return await super().try_minute(source, budget)
        except Exception as exc:  # an outage of the store lets the request through
            log.warning("budget.unavailable", error=type(exc).__name__)
            return None

    async def _take(self, key: str, budget: Budget, token: str) -> bool:
        """Wait for a shared slot; False when Redis cannot be reached (then only this
        process's own cap holds, and the outage is logged: it must not stop the syncs)."""
        poll = POLL_MIN
        try:
            while not await self._acquire(
                keys=[key], args=[budget.max_concurrent, self._lease, token]
            ):
                await asyncio.sleep(poll * random.uniform(0.5, 1.0))
                poll = min(POLL_MAX, poll * 2)
        except Exception as exc:  # redis-py's errors; CancelledError is not an Exception
            log.warning("budget.unavailable", error=type(exc).__name__)
            return False
        return True

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_budgets(
    shared_url: str | None, *, lease: float, process_cap: int | None = None
) -> Budgets:
    """Shared budgets on ``shared_url`` (Redis), else this process's own. ``lease`` is how
    long a slot outlives a worker that died holding it (longer than any request);
    ``process_cap`` as :class:`_Limits` says."""
    if shared_url:
        return RedisBudgets(shared_url, lease=lease, process_cap=process_cap)
    return LocalBudgets(process_cap=process_cap)
