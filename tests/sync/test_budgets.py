"""Per-source request budgets hold: never more requests in flight than the source allows, never
more in any window than its per-minute limit, in one process and across processes on Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.conftest import REDIS_URL, need_service, run_async
from tether.directory.schema import SourceEntry
from tether.sync.budgets import Budget, Budgets, LocalBudgets, RedisBudgets


class Probe:
    """Requests in flight now, the most at once, and when each was let through."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.sent: list[float] = []

    async def request(self, budgets: Budgets, source: str, budget: Budget, hold: float) -> None:
        async with budgets.slot(source, budget):
            self.sent.append(time.monotonic())
            self.now += 1
            self.peak = max(self.peak, self.now)
            await asyncio.sleep(hold)
            self.now -= 1

    def most_in_any(self, window: float) -> int:
        sent = sorted(self.sent)
        return max(sum(1 for t in sent[i:] if t < start + window) for i, start in enumerate(sent))


def budgets_of(kind: str, process_cap: int | None = None) -> list[Budgets]:
    """Two budget holders sharing what they should: two processes' worth on Redis, or
    (in-process) the same holder twice."""
    if kind == "redis":
        url = need_service(REDIS_URL, "Redis")
        return [RedisBudgets(url, lease=30, process_cap=process_cap) for _ in range(2)]
    local = LocalBudgets(process_cap=process_cap)
    return [local, local]


def probe_requests(
    kind: str, budget: Budget, *, requests: int, hold: float, process_cap: int | None = None
) -> Probe:
    """``requests`` requests to one fresh source at once, alternating between the holders."""
    source = f"src-{uuid.uuid4().hex[:8]}"

    async def main() -> Probe:
        holders = budgets_of(kind, process_cap)
        probe = Probe()
        try:
            await asyncio.gather(
                *(probe.request(holders[i % 2], source, budget, hold=hold) for i in range(requests))
            )
        finally:
            for holder in {id(h): h for h in holders}.values():
                await holder.aclose()
        return probe

    return run_async(main())


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_concurrency_never_exceeds_the_budget(kind: str) -> None:
    budget = Budget(max_concurrent=3, per_window=10_000)
    probe = probe_requests(kind, budget, requests=24, hold=0.05)
    assert len(probe.sent) == 24  # everyone got through: waiting, not failing
    assert probe.peak == 3  # the budget was used in full and never exceeded


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_a_process_cap_holds_below_a_larger_budget(kind: str) -> None:
    """The sync engine caps one source's share of its connections whatever the budget: each
    process sends at most ``process_cap`` requests to a source at once."""
    budget = Budget(max_concurrent=10, per_window=10_000)
    probe = probe_requests(kind, budget, requests=24, hold=0.05, process_cap=3)
    assert len(probe.sent) == 24
    processes = 2 if kind == "redis" else 1  # two holders on Redis; one, twice, in-process
    assert probe.peak == 3 * processes


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_requests_per_window_never_exceed_the_budget(kind: str) -> None:
    """A moving window: whatever window the source counts in, it never sees more."""
    budget = Budget(max_concurrent=50, per_window=5, window=1)
    probe = probe_requests(kind, budget, requests=12, hold=0)
    assert len(probe.sent) == 12
    # The times are taken here, a little after the store counted each request (up to tens of
    # milliseconds on a loaded machine): 0.2 s of slack either way.
    assert probe.most_in_any(0.8) <= 5
    assert max(probe.sent) - min(probe.sent) >= 1.5  # 12 at 5 a second need two more windows


def test_unreachable_redis_falls_back_to_this_process_cap() -> None:
    """An outage of the budget store is not an outage of syncs: the process's own cap holds."""
    budget = Budget(max_concurrent=2, per_window=1000)

    async def main() -> Probe:
        holder = RedisBudgets("redis://127.0.0.1:9/0", lease=30)  # the discard port: refused
        probe = Probe()
        try:
            await asyncio.gather(*(probe.request(holder, "down", budget, 0.02) for _ in range(6)))
        finally:
            await holder.aclose()
        return probe

    probe = run_async(main())
    assert len(probe.sent) == 6 and probe.peak == 2


def test_directory_entry_carries_the_budget() -> None:
    entry = SourceEntry.model_validate(
        {
            "id": "big-ehr",
            "name": "Big EHR",
            "type": "CLINICAL",
            "max_concurrent_requests": 8,
            "max_requests_per_minute": 250,
        }
    )
    assert (entry.max_concurrent_requests, entry.max_requests_per_minute) == (8, 250)
    budget = Budget.of({"max_concurrent_requests": 8, "max_requests_per_minute": 250})
    assert budget == Budget(max_concurrent=8, per_window=250, window=60)
    assert Budget.of({}) == Budget()  # the defaults
    with pytest.raises(ValueError, match="max_requests_per_minute"):
        SourceEntry.model_validate(
            {"id": "x", "name": "X", "type": "CLINICAL", "max_requests_per_minute": 0}
        )
