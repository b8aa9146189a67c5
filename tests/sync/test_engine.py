"""The worker's sync engine: many syncs in flight at once within the source's budget, fair
ordering, a stalled source holding only its own syncs, and two worker processes on Redis that
share one budget and never run a connection twice at once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import (
    REDIS_URL,
    MemberCtx,
    make_member,
    make_settings,
    need_service,
    process_env,
)
from tests.sync.helpers import connected, reload, stored, wait_for
from tether.jobs import EmbeddedWorker, Jobs, make_huey
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.settings import Settings
from tether.store.models import Connection, DataSource, SyncRun
from tether.sync.context import HTTP_POOL, SOURCE_SHARE
from tether.sync.engine import FairQueue, Run, SyncEngine

CLINIC = "sandbox-clinic"
LAB = "sandbox-lab"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Hundreds of members connect here from one address within a minute: the limit on
    requests without a credential (tests/api/test_rate_limits.py) is off."""
    return make_settings(db_url, tmp_path, rate_limit_anonymous=0)


def set_budget(runtime: Runtime, source: str, **limits: int) -> None:
    with runtime.db.write() as session:
        row = session.get(DataSource, source)
        assert row is not None
        row.settings = {**(row.settings or {}), **limits}


def connect_many(
    client, member: MemberCtx, runtime: Runtime, source: str, patient: str, n: int
) -> list[Connection]:
    conns = []
    for i in range(n):
        other = make_member(runtime, member.tenant, f"m{i}-{uuid.uuid4().hex[:6]}")
        conns.append(connected(client, other, runtime, source, patient))
    return conns


def statuses(runtime: Runtime, conns: list[Connection]) -> list[str]:
    return [reload(runtime, c.id).sync_status for c in conns]


# --- the queue's order -------------------------------------------------------------------


def test_fair_queue_serves_sync_now_first_then_tenants_in_turn() -> None:
    queue = FairQueue()
    for pk in range(1, 6):  # one tenant's five scheduled syncs, queued first
        queue.push(Run(pk, 1, "scheduled", tenant="big", source="a"))
    queue.push(Run(10, 1, "scheduled", tenant="small", source="a"))
    queue.push(Run(11, 1, "initial", tenant="small", source="a"))
    queue.push(Run(12, 1, "manual", tenant="big", source="a"))
    order = [queue.pop() for _ in range(len(queue))]
    assert [r.connection_pk for r in order if r] == [12, 11, 1, 10, 2, 3, 4, 5]


def test_fair_queue_keeps_one_run_per_connection_and_lifts_its_priority() -> None:
    queue = FairQueue()
    assert queue.push(Run(1, 1, "scheduled", tenant="t"))
    assert queue.push(Run(2, 1, "scheduled", tenant="t"))
    assert not queue.push(Run(1, 1, "scheduled", tenant="t"))  # already waiting
    assert queue.push(Run(2, 1, "manual", tenant="t"))  # "Sync now" lifts it
    assert len(queue) == 2
    first = queue.pop()
    assert first is not None and (first.connection_pk, first.trigger) == (2, "manual")


def test_fair_queue_skips_a_source_that_holds_its_share() -> None:
    queue = FairQueue()
    queue.push(Run(1, 1, "manual", tenant="t", source="stalled"))
    queue.push(Run(2, 1, "scheduled", tenant="t", source="healthy"))
    run = queue.pop(blocked=frozenset({"stalled"}))
    assert run is not None and run.connection_pk == 2
    assert queue.pop(blocked=frozenset({"stalled"})) is None  # only the held source is left
    assert len(queue) == 1


# --- the engine, over real HTTP ------------------------------------------------------------


@pytest.fixture
def engine(runtime: Runtime) -> Iterator[Callable[..., SyncEngine]]:
    started: list[SyncEngine] = []

    def start(**options: object) -> SyncEngine:
        built = SyncEngine(runtime, **options)  # type: ignore[arg-type]
        built.start()
        started.append(built)
        return built

    yield start
    for built in started:
        built.stop()


@pytest.mark.timeout(180)
def test_many_syncs_are_in_flight_at_once_within_the_source_budget(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox, engine
) -> None:
    """40 syncs at 200 ms a request: the source sees dozens of requests at once (the old
    worker: two), never more than the budget, and every sync stores its whole record."""
    set_budget(runtime, CLINIC, max_concurrent_requests=60)
    runtime.jobs = None  # hand the runs over directly below
    conns = connect_many(client, member, runtime, CLINIC, "clinic-1", 40)
    sandbox.set_knobs(CLINIC, {"latency_ms": 200})
    sandbox.counters(CLINIC).reset()
    running = engine(concurrency=200, processes=1)  # pages prepared in a child process
    for conn in conns:
        assert running.submit(conn.id, conn.grant_epoch, "initial", tenant="t", source=CLINIC)
    wait_for(lambda: all(s == "RETRIEVED" for s in statuses(runtime, conns)), timeout=150)
    counters = sandbox.counters(CLINIC)
    assert 30 <= counters.fhir_max_in_flight <= 60
    assert running.peak_in_flight >= 30
    for conn in conns:
        after = reload(runtime, conn.id)
        assert after.sync_errors == [] and after.resource_counts == stored(runtime, conn.id)
    assert len({tuple(sorted(stored(runtime, c.id).items())) for c in conns}) == 1


@pytest.mark.timeout(240)
def test_a_stalled_source_holds_only_its_own_syncs(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox, engine
) -> None:
    """A hundred syncs in flight on a source that stalls every request, its budget large
    enough for all their requests: another source's sync on the same worker still starts
    and ends within the stall (the stalled source holds neither all the run slots nor all
    the connections), and once the source answers again every stalled sync ends whole."""
    runtime.jobs = None
    stuck = connect_many(client, member, runtime, CLINIC, "clinic-1", 110)
    lab = connected(client, member, runtime, LAB, "lab-1")
    set_budget(runtime, CLINIC, max_concurrent_requests=400, max_requests_per_minute=60_000)
    sandbox.set_knobs(CLINIC, {"stall_seconds": 6})
    sandbox.counters(CLINIC).reset()
    running = engine(concurrency=134)  # at most 100 of them for one source
    for conn in stuck:
        running.submit(conn.id, conn.grant_epoch, "scheduled", tenant="t", source=CLINIC)
    wait_for(lambda: running.in_flight() == 100)
    assert running.waiting() == 10  # the stalled source's share of the slots is full
    wait_for(lambda: sandbox.counters(CLINIC).fhir_max_in_flight >= HTTP_POOL * SOURCE_SHARE)
    running.submit(lab.id, lab.grant_epoch, "scheduled", tenant="t", source=LAB)
    wait_for(lambda: reload(runtime, lab.id).sync_status == "RETRIEVED", timeout=5.5)
    assert all(s in ("PENDING", "RETRIEVING") for s in statuses(runtime, stuck))
    sandbox.set_knobs(CLINIC, {"stall_seconds": 0})
    wait_for(lambda: all(s == "RETRIEVED" for s in statuses(runtime, stuck)), timeout=150)
    expected = stored(runtime, stuck[0].id)
    assert all(stored(runtime, conn.id) == expected for conn in stuck)


@pytest.mark.timeout(240)
def test_two_worker_processes_on_redis_share_one_budget_and_never_overlap(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Two ``tether worker`` processes on one Redis queue: every sync is handed over twice
    (two messages per connection), the source allows 3 requests at once, and it never sees
    more; no connection's runs overlap in time."""
    url = need_service(REDIS_URL, "Redis")
    name = f"test-{uuid.uuid4().hex}"
    assert isinstance(runtime.jobs, Jobs)
    runtime.jobs.close()
    runtime.jobs = Jobs(runtime, huey=make_huey(url, name=name))
    set_budget(runtime, CLINIC, max_concurrent_requests=3)
    sandbox.set_knobs(CLINIC, {"latency_ms": 60})
    env = process_env(runtime.settings, TETHER_QUEUE_URL=url)
    procs = []
    for i in range(2):
        log = (tmp_path / f"worker-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tether", "worker", "--queue-name", name,
                 "--sweep-interval", "3600", "--poll-interval", "0.1"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    try:
        sandbox.counters(CLINIC).reset()
        conns = connect_many(client, member, runtime, CLINIC, "clinic-1", 12)
        for conn in conns:  # a duplicate message for each: both workers may take one
            runtime.enqueue(
                "sync",
                connection_pk=conn.id,
                epoch=conn.grant_epoch,
                trigger="scheduled",
                tenant=member.tenant.tenant_id,
                source=CLINIC,
            )
        wait_for(lambda: all(s == "RETRIEVED" for s in statuses(runtime, conns)), timeout=180)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        runtime.jobs.huey.flush()
    assert sandbox.counters(CLINIC).fhir_max_in_flight == 3
    with runtime.db.read() as session:
        runs = session.execute(
            select(SyncRun.connection_id, SyncRun.started_at, SyncRun.finished_at).where(
                SyncRun.connection_id.in_([c.id for c in conns])
            )
        ).all()
    by_connection: dict[int, list[tuple]] = {}
    for pk, began, ended in runs:
        by_connection.setdefault(pk, []).append((began, ended))
    assert set(by_connection) == {c.id for c in conns}
    for spans in by_connection.values():
        spans.sort()
        for (_, first_end), (second_start, _) in pairwise(spans):
            assert first_end <= second_start  # one after the other, never at once
    for conn in conns:
        assert reload(runtime, conn.id).resource_counts == stored(runtime, conn.id)


@pytest.mark.timeout(240)
def test_a_worker_killed_with_many_syncs_in_flight_is_finished_by_the_sweeper(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A ``tether worker`` killed (SIGKILL) with 200 syncs in flight and its queue's messages
    lost: the due-syncs sweep finds every one again, and each ends with its whole record,
    nothing stored twice."""
    from datetime import timedelta

    from tether.store.models import utcnow

    runtime_jobs = runtime.jobs
    assert isinstance(runtime_jobs, Jobs)
    set_budget(runtime, CLINIC, max_concurrent_requests=400, max_requests_per_minute=60_000)
    conns = connect_many(client, member, runtime, CLINIC, "clinic-1", 200)
    sandbox.set_knobs(CLINIC, {"latency_ms": 1000})  # slow enough that none ends before all start
    log = (tmp_path / "worker.log").open("wb")
    # Room for all 200 at once: one source may hold three quarters of the engine's slots.
    env = {**process_env(runtime.settings), "TETHER_SYNC_CONCURRENCY": "267"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "worker", "--sweep-interval", "3600",
         "--poll-interval", "0.1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: statuses(runtime, conns).count("RETRIEVING") == 200, timeout=90)
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    sandbox.set_knobs(CLINIC, {"latency_ms": 0})
    left = statuses(runtime, conns)
    assert left.count("RETRIEVING") >= 190  # what the crash left behind
    runtime_jobs.huey.flush()  # and the queue lost its messages too
    runtime.clock = lambda: utcnow() + timedelta(minutes=10)
    assert runtime_jobs.run_sweeps()["due-syncs"] == len(conns) - left.count("RETRIEVED")
    engine = SyncEngine(runtime)
    engine.start()
    worker = EmbeddedWorker(runtime_jobs, poll_interval=0.05, sweep_interval=None)
    worker.start()
    try:
        wait_for(lambda: all(s == "RETRIEVED" for s in statuses(runtime, conns)), timeout=120)
    finally:
        worker.stop()
        engine.stop()
    expected = stored(runtime, conns[0].id)
    for conn in conns:  # no duplicates, nothing missing: every record is the same, whole
        assert stored(runtime, conn.id) == expected
        assert reload(runtime, conn.id).resource_counts == expected


def test_the_engine_takes_runs_by_slot_reserve_share_and_never_twice(runtime: Runtime) -> None:
    """What the dispatcher starts: never a second run of a connection in flight (it waits),
    no source past its share of the slots, and the reserve only for "Sync now"."""
    engine = SyncEngine(runtime, concurrency=4)  # 4 slots and 1 in reserve, 3 per source
    engine._queue.push(Run(1, 1, "manual", tenant="t", source="a"))  # 1 is in flight
    for pk, tenant, source in ((2, "t", "a"), (3, "t", "a"), (4, "t", "a"), (5, "u", "b")):
        engine._queue.push(Run(pk, 1, "scheduled", tenant=tenant, source=source))
    engine._queue.push(Run(6, 1, "scheduled", tenant="u", source="b"))

    def start(runs: list[Run]) -> None:
        for run in runs:
            engine._in_flight[run.connection_pk] = (run, None)  # type: ignore[assignment]

    start([Run(1, 1, "scheduled", tenant="t", source="a")])
    taken = engine._take_runs()
    assert [r.connection_pk for r in taken] == [2, 5, 3]  # tenants in turn; slots now full
    start(taken)
    engine._queue.push(Run(7, 1, "manual", tenant="u", source="b"))
    assert [r.connection_pk for r in engine._take_runs()] == [7]  # only "Sync now" gets in
    assert sorted(r.connection_pk for r in iter(engine._queue.pop, None)) == [1, 4, 6]


def test_a_busy_writer_holds_new_runs_back_but_sync_now(runtime: Runtime) -> None:
    """While ``WRITE_BACKLOG`` page writes wait for the writer, no run starts but "Sync now"
    (a run started then would only hold its pages in memory); the rest start once it drains."""
    engine = SyncEngine(runtime, concurrency=10)
    engine._queue.push(Run(1, 1, "scheduled", tenant="t", source="a"))
    engine._queue.push(Run(2, 1, "initial", tenant="u", source="a"))
    engine._queue.push(Run(3, 1, "manual", tenant="v", source="b"))
    assert [r.connection_pk for r in engine._take_runs(writer_busy=True)] == [3]
    assert [r.connection_pk for r in engine._take_runs(writer_busy=True)] == []
    assert [r.connection_pk for r in engine._take_runs()] == [2, 1]


def test_the_writers_backlog_counts_each_write_until_it_ends(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    """What the gate reads: a page write counts from its hand-over to the writer until it has
    ended, written or refused (a fenced write too)."""
    import asyncio
    import dataclasses

    from tether.errors import Fenced
    from tether.sync.checks import stamped
    from tether.sync.claim import claim_sync
    from tether.sync.context import loop_context

    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    claim = claim_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert claim is not None
    rows = [stamped("Observation", {"id": f"backlog-{i}", "status": "final"}) for i in range(3)]
    stale = dataclasses.replace(claim, epoch=claim.epoch + 1)  # fenced at its write

    async def main() -> list[int]:
        async with loop_context(runtime, db_threads=1, processes=0, store=runtime.db.sqlite) as ctx:
            seen = [ctx.writes_waiting]
            first, second = ctx.write(claim, rows), ctx.write(stale, rows)
            seen.append(ctx.writes_waiting)
            assert (await first).total() == 3
            with pytest.raises(Fenced):
                await second
            await asyncio.sleep(0)  # the done callbacks run on the loop
            seen.append(ctx.writes_waiting)
            return seen

    assert asyncio.run(main()) == [0, 2, 0]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((700, 10, 10), (10_000, 10, 10)),  # CPython's default: raised
        ((700, 5, 20), (10_000, 5, 20)),  # the older generations' settings are kept
        ((50_000, 10, 10), (50_000, 10, 10)),  # an operator's higher value stands
        ((0, 10, 10), (0, 10, 10)),  # so does "off"
    ],
)
def test_a_syncing_process_collects_young_garbage_less_often(
    before: tuple[int, int, int], after: tuple[int, int, int]
) -> None:
    """In a fresh interpreter: the collector's thresholds are process-wide."""
    code = (
        "import gc; from tether.heap import tune_gc; "
        f"gc.set_threshold(*{before!r}); tune_gc(); print(tuple(gc.get_threshold()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr(after)
