"""The worker's sync engine: hundreds of syncs in flight on one event loop, fairly ordered.

A sync spends nearly all its time waiting for its source (100 to 500 ms a request at real health
systems), so a worker process runs them as coroutines (:func:`tether.sync.run.sync_connection`)
on one event loop in a thread of its own, up to ``TETHER_SYNC_CONCURRENCY`` at once, with
their blocking work (the database, token refreshes) in ``TETHER_SYNC_DB_THREADS`` threads and
the per-resource work (parse, check, serialise each page) in ``TETHER_SYNC_PROCESSES`` child
processes, so it runs beside the event loop instead of taking turns with it for one core.

The queue's ``sync`` task only hands the run over (:meth:`SyncEngine.submit`) and returns, so
two queue threads keep the engine fed. The database stays the truth: a run is claimed in the
database when it starts (:mod:`tether.sync.claim`) and its heartbeat is renewed for every run
in flight every ``HEARTBEAT_EVERY`` seconds (also while a run waits for its source's budget),
so a run this process dies holding is found by the due-syncs sweep once the heartbeat is stale,
and a hand-over lost in a crash is found because the connection is still due.

Runs wait in a :class:`FairQueue` until a slot is free: "Sync now" first, then first syncs of
new or re-established connections, then scheduled ones; within each, tenants take turns, so
one tenant's ten thousand queued syncs do not hold another's one. No data source may hold more
than ``SOURCE_SHARE`` of the slots while another source's runs wait, nor of the event loop's
connections (:mod:`tether.sync.context`), so a source that stalls slows only its own syncs.
``MANUAL_RESERVE`` extra slots are kept for "Sync now".
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

from sqlalchemy import bindparam, update

from tether.domain import Status, SyncStatus
from tether.heap import tune_gc
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.store.models import Connection
from tether.sync.context import SOURCE_SHARE, LoopContext, loop_context, uses_store_process
from tether.sync.run import sync_connection

log = get_logger("tether.sync")

HEARTBEAT_EVERY = 30.0  # seconds; well inside tether.sync.claim.HEARTBEAT_STALE_SECONDS
BACKLOG_PER_SLOT = 100  # runs waiting per slot before submit() makes the queue thread wait
# Page writes waiting for the writer (the store process, or the database threads) beyond which
# no new run starts but "Sync now": when the writer, not the sources, is what syncs wait for,
# a run started now would only hold its pages in memory until the writes before it are done.
# High enough that the writer never runs dry while new runs fetch their first pages (at 1,000
# syncs a minute about 70 writes a second, a new run's first write a second after it starts).
WRITE_BACKLOG = 100
GATED_RECHECK = 0.25  # seconds between looks at the writer's backlog while it holds runs back
PRIORITY = {"manual": 0, "initial": 1, "re-established": 1}  # anything else: 2 (scheduled)
LOWEST = 2


@dataclass(frozen=True, slots=True)
class Run:
    """A sync handed to the engine."""

    connection_pk: int
    epoch: int
    trigger: str
    tenant: str = ""
    source: str = ""
    requested: float | None = None  # when it was asked for (epoch seconds)

    @property
    def priority(self) -> int:
        return PRIORITY.get(self.trigger, LOWEST)


class FairQueue:
    """Runs waiting for a slot: by priority, then tenants in turn, each tenant's in order.
    A connection waits at most once (a second hand-over of it is dropped, or lifts the one
    waiting to the higher priority)."""

    def __init__(self) -> None:
        self._levels: list[OrderedDict[str, deque[Run]]] = [
            OrderedDict() for _ in range(LOWEST + 1)
        ]
        self._waiting: dict[int, Run] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def push(self, run: Run) -> bool:
        """Queue ``run``; False when its connection was already waiting at that priority or
        a higher one."""
        queued = self._waiting.get(run.connection_pk)
        if queued is not None:
            if queued.priority <= run.priority:
                return False
            self._remove(queued)
        self._levels[run.priority].setdefault(run.tenant, deque()).append(run)
        self._waiting[run.connection_pk] = run
        return True

    def pop(self, blocked: frozenset[str] = frozenset()) -> Run | None:
        """The next run whose source is not in ``blocked``; its tenant goes to the back."""
        for tenants in self._levels:
            for tenant, runs in tenants.items():
                run = next((r for r in runs if r.source not in blocked), None)
                if run is None:
                    continue
                runs.remove(run)
                del tenants[tenant]
                if runs:
                    tenants[tenant] = runs  # the tenant's turn is over: to the back
                del self._waiting[run.connection_pk]
                return run
        return None

    def _remove(self, run: Run) -> None:
        tenants = self._levels[run.priority]
        runs = tenants[run.tenant]
        runs.remove(run)
        if not runs:
            del tenants[run.tenant]
        del self._waiting[run.connection_pk]


class SyncEngine:
    """Run the process's syncs (a runtime :class:`~tether.runtime.Service`): ``submit()``
    from any thread; ``start()`` and ``stop()`` are idempotent."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int | None = None,
        db_threads: int | None = None,
        processes: int | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.concurrency = concurrency or settings.sync_concurrency
        self.reserve = max(1, self.concurrency // 10)  # extra slots only "Sync now" may use
        self.db_threads = db_threads or settings.sync_db_threads
        self.processes = settings.sync_processes if processes is None else processes
        self.store = uses_store_process(runtime)
        self.stop_timeout = stop_timeout
        self._queue = FairQueue()
        self._lock = threading.Condition()
        self._in_flight: dict[int, tuple[Run, asyncio.Task[object]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._ready = threading.Event()
        self.peak_in_flight = 0

    # --- any thread -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def waiting(self) -> int:
        with self._lock:
            return len(self._queue)

    def submit(
        self,
        connection_pk: int,
        epoch: int,
        trigger: str = "scheduled",
        *,
        tenant: str = "",
        source: str = "",
        requested: float | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Hand a sync over; False when its connection was already waiting (at this priority
        or a higher one) or the engine is stopping. One whose connection's run is in flight
        waits until that run ends. While ``BACKLOG_PER_SLOT`` runs per slot wait, this waits
        (up to ``timeout``) rather than hold unbounded work: the rest stays on the shared
        queue for other workers. Raises TimeoutError when the wait ran out."""
        run = Run(connection_pk, epoch, trigger, tenant, source, requested)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while len(self._queue) >= self.concurrency * BACKLOG_PER_SLOT and not self._stopping:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("the sync engine's backlog is full")
                self._lock.wait(remaining)
            if self._stopping:
                return False
            queued = self._queue.push(run)  # one in flight? it waits until that one ends
        if queued:
            self._poke()
        return queued

    def start(self) -> None:
        tune_gc()  # this process syncs: see tune_gc
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._ready.clear()
            self._thread = threading.Thread(target=self._main, name="sync-engine", daemon=True)
            self._thread.start()
        self._ready.wait(10)
        self.runtime.syncs = self

    def stop(self) -> None:
        """Take no more runs, give the running ones ``stop_timeout`` seconds, then cancel the
        rest: their connections stay RETRIEVING until the heartbeat goes stale and the sweep
        queues them again (their written pages are kept; the next run writes them again)."""
        with self._lock:
            thread, self._stopping = self._thread, True
            self._lock.notify_all()
        if thread is None:
            return
        if self.runtime.syncs is self:
            self.runtime.syncs = None  # from now on the sync task runs syncs itself
        self._poke()
        thread.join(self.stop_timeout + 15)
        with self._lock:
            self._thread = None

    # --- the engine's thread ----------------------------------------------------------

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the engine stopped
                loop.call_soon_threadsafe(wake.set)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            async with loop_context(
                self.runtime, db_threads=self.db_threads, processes=self.processes, store=self.store
            ) as ctx:
                heartbeat = asyncio.create_task(self._heartbeats(ctx))
                self._ready.set()
                try:
                    await self._dispatch(ctx)
                    await self._drain()
                finally:
                    heartbeat.cancel()
                    await asyncio.gather(heartbeat, return_exceptions=True)
        finally:
            self._loop = None

    async def _dispatch(self, ctx: LoopContext) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            with self._lock:
                if self._stopping:
                    return
                writer_busy = ctx.writes_waiting >= WRITE_BACKLOG
                started = self._start_runs(ctx, writer_busy=writer_busy)
                gated = writer_busy and bool(self._queue)
            if started:
                await asyncio.sleep(0)  # let them start before looking again
                continue
            if gated:  # runs wait for the writer's backlog, not for a slot: look again soon
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), GATED_RECHECK)
                continue
            await self._wake.wait()

    def _start_runs(self, ctx: LoopContext, *, writer_busy: bool) -> int:
        """Start what :meth:`_take_runs` picks (called with the lock held)."""
        runs = self._take_runs(writer_busy=writer_busy)
        for run in runs:
            task = asyncio.create_task(self._run(ctx, run), name=f"sync-{run.connection_pk}")
            self._in_flight[run.connection_pk] = (run, task)
        self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))
        if runs:
            self._lock.notify_all()  # submit() may be waiting for room in the backlog
        return len(runs)

    def _take_runs(self, *, writer_busy: bool = False) -> list[Run]:
        """The waiting runs to start now, while there are slots (called with the lock held):
        the reserve only for "Sync now", no source past its share, never a second run of a
        connection whose run is in flight (that one waits for it), and only "Sync now" while
        the writer is ``writer_busy`` (``WRITE_BACKLOG``)."""
        taken: list[Run] = []
        later: list[Run] = []
        by_source = Counter(run.source for run, _ in self._in_flight.values())
        share = max(1, int(self.concurrency * SOURCE_SHARE))
        while self._queue:
            busy = len(self._in_flight) + len(taken)
            if busy >= self.concurrency + self.reserve:
                break
            blocked = frozenset(s for s, n in by_source.items() if n >= share)
            run = self._queue.pop(blocked)
            if run is None:
                break
            if run.connection_pk in self._in_flight:
                later.append(run)
                continue
            if (busy >= self.concurrency or writer_busy) and run.priority > 0:
                self._queue.push(run)  # only "Sync now" may use the reserve, or pass the gate
                break
            taken.append(run)
            by_source[run.source] += 1
        for run in later:
            self._queue.push(run)
        return taken

    async def _run(self, ctx: LoopContext, run: Run) -> None:
        try:
            await sync_connection(
                ctx,
                connection_pk=run.connection_pk,
                epoch=run.epoch,
                trigger=run.trigger,
                requested=run.requested,
            )
        except Exception:  # not CancelledError: a stop's cancellation goes on up
            log.exception("sync.engine_run_failed", connection=run.connection_pk)
        finally:
            with self._lock:
                self._in_flight.pop(run.connection_pk, None)
            assert self._wake is not None
            self._wake.set()

    async def _drain(self) -> None:
        """Stopping: wait for the runs in flight, then cancel what is left."""
        with self._lock:
            tasks = [task for _, task in self._in_flight.values()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.stop_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.warning("sync.engine_stopped_runs", cancelled=len(pending))

    async def _heartbeats(self, ctx: LoopContext) -> None:
        """Every ``HEARTBEAT_EVERY`` seconds, renew the heartbeat of every run in flight (a
        run waiting for its source's budget writes nothing for a while)."""
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            with self._lock:
                runs = [(r.connection_pk, r.epoch) for r, _ in self._in_flight.values()]
            if runs:
                try:
                    await ctx.blocking(renew_heartbeats, self.runtime, runs)
                except Exception:
                    log.exception("sync.heartbeat_failed")


def renew_heartbeats(runtime: Runtime, runs: list[tuple[int, int]]) -> None:
    """Renew the heartbeat of each ``(connection, grant epoch)`` still RETRIEVING in that
    epoch (one that moved on is left alone: its run is fenced at its next write)."""
    now = runtime.clock()
    with runtime.db.write() as session:
        session.connection().execute(
            update(Connection)
            .where(
                Connection.id == bindparam("pk"),
                Connection.grant_epoch == bindparam("epoch"),
                Connection.status == Status.CONNECTED.value,
                Connection.sync_status == SyncStatus.RETRIEVING.value,
            )
            .values(sync_heartbeat_at=now),
            [{"pk": pk, "epoch": epoch} for pk, epoch in runs],
        )
