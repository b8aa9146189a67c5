"""The sync's pipeline: fetchers read the source's pages while a store loop writes them.

:func:`pull` runs it for one claimed connection, as coroutines on the worker's event loop (see
:mod:`tether.sync.engine`): hundreds of syncs wait on their sources at once without a thread
each. Up to ``TYPE_CONCURRENCY`` resource types are searched at once (FHIR paging:
:mod:`tether.fhir.paging`, every request inside the source's budget), and the fetchers tell the
store loop what happened with the typed messages below. Each page is parsed, checked and
serialised as it arrives (:func:`tether.sync.checks.prepare_page`, in a database thread or a
page process: the per-resource work never runs on the event loop). At most ``QUEUE_DEPTH``
pages wait between fetchers and store loop, so memory stays bounded by a few pages per sync
whatever the size of the record. The store loop gathers pages (up to ``ctx.write_batch``
resources or ``HELD_PAGES`` pages, or whatever there is when the fetchers are done) and writes
them in one transaction fenced by the grant epoch (:mod:`tether.sync.fenced_writes`), from a
database thread or from the worker's store process (:mod:`tether.sync.store_process`, where the
next batch already waits while one is written). What happened is gathered in a
:class:`Progress`.

A 401 gets one token refresh per sync, whichever type meets it first (the others retry with
the new token); a second 401, a refresh that finds the grant dead, or Basic credentials that
stop working end the sync's authorization. A source that is down or throttling stops every
fetcher (the other types would fail the same way); another page error fails its type only.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, aclosing
from dataclasses import dataclass, field
from typing import ParamSpec, Protocol, TypeAlias, TypeVar

from tether.connections.tokens import (
    RefreshResult,
    SourceAuthorization,
    expire,
    refresh_connection,
    source_authorization,
)
from tether.errors import Fenced, PageError, SourceUnavailable, Unauthorized
from tether.fhir.paging import PageReader, SourceClient
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.sync.budgets import Budget, Budgets
from tether.sync.checks import PreparedPage, PreparedRow, Tally
from tether.sync.claim import Claim
from tether.sync.references import ReferenceTally, fetch_references

log = get_logger("tether.sync")

QUEUE_DEPTH = 4  # pages waiting to be written: the memory bound is a few pages
TYPE_CONCURRENCY = 4  # a sync's resource types searched at once
WRITE_BATCH = 2000  # resources that make a write from database threads (pages already arrived)
HELD_PAGES = 4  # pages that make a write transaction, whatever their size
SOURCE_DOWN = frozenset({"SOURCE_UNAVAILABLE", "RATE_LIMITED"})
WHOLE_SYNC = "*"  # the "type" of a failure that is not one resource type's


@dataclass
class Progress:
    """What a sync run has done so far (written by the store loop, read by the finish)."""

    written: int = 0
    done: set[str] = field(default_factory=set)  # types read to their last page
    failed: dict[str, PageError] = field(default_factory=dict)  # per type, or WHOLE_SYNC
    tally: Tally = field(default_factory=Tally)
    expired: bool = False  # the source stopped accepting the authorization
    retry_after: float | None = None  # the longest Retry-After a failure asked for
    written_by_type: Counter[str] = field(default_factory=Counter)
    pages: int = 0  # pages read (searchset bundles)
    reader: PageReader | None = None  # the run's reader: requests, retries, throttling
    references: set[str] = field(default_factory=set)  # what the stored pages refer to
    # What the referenced-resources phase did (read, missing at the source, on another server).
    referenced: ReferenceTally = field(default_factory=ReferenceTally)


@dataclass(frozen=True, slots=True)
class PageArrived:
    """One searchset page of ``rtype``, checked and serialised."""

    rtype: str
    page: PreparedPage


@dataclass(frozen=True, slots=True)
class TypeDone:
    """Every page of ``rtype`` has been queued."""

    rtype: str


@dataclass(frozen=True, slots=True)
class TypeFailed:
    """``rtype`` (or WHOLE_SYNC) failed: none of its later pages follow."""

    rtype: str
    error: PageError


@dataclass(frozen=True, slots=True)
class AuthorizationLost:
    """The source no longer accepts the connection's authorization (met while reading rtype)."""

    rtype: str


@dataclass(frozen=True, slots=True)
class FetchEnded:
    """The fetcher's last message, whatever happened."""


Message: TypeAlias = PageArrived | TypeDone | TypeFailed | AuthorizationLost | FetchEnded

P = ParamSpec("P")
T = TypeVar("T")


class SyncContext(Protocol):
    """What a sync runs with: the runtime, the event loop's HTTP clients, the sources'
    budgets, the threads blocking work (the database, token refreshes) runs in, and where
    pages are parsed and checked."""

    runtime: Runtime
    budgets: Budgets
    write_depth: int  # writes a sync may have queued at once (they are applied in order)
    write_batch: int  # resources that make a write (WRITE_BATCH, or the store process's)

    def request_slot(
        self, source: str, budget: Budget
    ) -> AbstractAsyncContextManager[SourceClient]:
        """Inside it, one request to ``source`` may be sent (within its budget and the
        process's connections), on the client it gives (counted as ``source``'s)."""
        ...

    def blocking(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        """Run ``fn`` in a database thread, without blocking the event loop."""
        ...

    def prepare(
        self, body: bytes, *, rtype: str, patient_id: str, source: str
    ) -> Awaitable[PreparedPage]:
        """:func:`~tether.sync.checks.prepare_page`, off the event loop (in another process
        when the worker keeps one for it)."""
        ...

    def write(self, claim: Claim, rows: Sequence[PreparedRow]) -> Awaitable[Counter[str]]:
        """:func:`~tether.sync.fenced_writes.write_rows` for the claimed connection, off the
        event loop (in the store process when the worker keeps one); what was stored per
        type, or :class:`~tether.errors.Fenced`."""
        ...


@dataclass
class _Current:
    """The authorization the fetchers send now (replaced after a refresh), and whether this
    sync has already spent its one refresh."""

    authorization: SourceAuthorization
    refreshed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def header(self) -> str:
        return self.authorization.header


async def pull(
    ctx: SyncContext, *, claim: Claim, progress: Progress, page_size: int, max_pages: int
) -> None:
    """Fetch and store the claimed connection's resources, recording what happened in
    ``progress``; raises :class:`~tether.errors.Fenced` when the grant epoch moved on."""
    runtime = ctx.runtime
    try:
        first = await ctx.blocking(
            source_authorization, runtime, connection_pk=claim.pk, epoch=claim.epoch
        )
    except SourceUnavailable:
        progress.failed[WHOLE_SYNC] = PageError("SOURCE_UNAVAILABLE", "token refresh failed")
        return
    if first is None:
        progress.expired = True
        return
    current = _Current(first)
    pages: asyncio.Queue[Message] = asyncio.Queue(maxsize=QUEUE_DEPTH)
    reader = PageReader(
        base_url=claim.base_url,
        authorization=current.header,
        max_pages=max_pages,
        slot=lambda: ctx.request_slot(claim.slug, claim.budget),
        accept=claim.profile.accept,
    )
    page_size = claim.profile.page_size or page_size
    progress.reader = reader
    fetcher = asyncio.create_task(
        _fetch_all(ctx, claim, reader, current, pages, progress, page_size),
        name=f"sync-fetch-{claim.pk}",
    )
    try:
        await _store_all(ctx, claim, pages, progress)
    finally:
        if not fetcher.done():  # the store loop stopped early (fenced, or cancelled)
            fetcher.cancel()
        await asyncio.gather(fetcher, return_exceptions=True)
    # The referenced resources, unless the source has stopped answering this sync.
    down = any(e.code in SOURCE_DOWN for e in progress.failed.values())
    if progress.references and not progress.expired and not down:
        await _references(ctx, claim, reader, progress)


async def _references(
    ctx: SyncContext, claim: Claim, reader: PageReader, progress: Progress
) -> None:
    """The resources the record refers to outside the patient compartment
    (:mod:`tether.sync.references`), written like a page's rows."""

    async def write(rows: list[PreparedRow]) -> None:
        _written(progress, await ctx.write(claim, rows))

    progress.referenced = await fetch_references(
        runtime=ctx.runtime,
        blocking=ctx.blocking,
        reader=reader,
        connection_pk=claim.pk,
        base_url=claim.base_url,
        source=claim.slug,
        patient_id=claim.patient_id,
        references=progress.references,
        types=claim.profile.referenced_types,
        write=write,
    )


def _searches(claim: Claim, rtype: str, page_size: int) -> list[dict[str, str]]:
    """The searches that read ``rtype``: one, or one per parameter set the source's profile
    names for the type (some servers refuse an Observation search without ``category``)."""
    params = {"_count": str(page_size)}
    if rtype == "Patient":
        params["_id"] = claim.patient_id
    else:
        params["patient"] = claim.patient_id
    since = claim.cursor.get(rtype)
    if since and claim.profile.use_last_updated:
        params["_lastUpdated"] = f"ge{since}"
    sets = claim.profile.search_params.get(rtype) or ({},)
    return [{**extra, **params} for extra in sets]


async def _fetch_all(
    ctx: SyncContext,
    claim: Claim,
    reader: PageReader,
    current: _Current,
    pages: asyncio.Queue[Message],
    progress: Progress,
    page_size: int,
) -> None:
    """Every type's search, ``TYPE_CONCURRENCY`` at a time, onto the queue; when one of them
    finds the whole sync cannot go on (the source is down, the authorization is gone), the
    others are cancelled."""
    stop = asyncio.Event()
    gate = asyncio.Semaphore(TYPE_CONCURRENCY)
    tasks = {
        asyncio.create_task(
            _fetch_type(ctx, claim, rtype, reader, current, pages, progress, page_size, gate, stop)
        )
        for rtype in claim.types
    }
    stopped = asyncio.create_task(stop.wait())
    try:
        pending = set(tasks)
        while pending:
            done, _ = await asyncio.wait(pending | {stopped}, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
            if stopped in done:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
    finally:
        stopped.cancel()
        for task in tasks:
            task.cancel()
    await pages.put(FetchEnded())


async def _fetch_type(
    ctx: SyncContext,
    claim: Claim,
    rtype: str,
    reader: PageReader,
    current: _Current,
    pages: asyncio.Queue[Message],
    progress: Progress,
    page_size: int,
    gate: asyncio.Semaphore,
    stop: asyncio.Event,
) -> None:
    """One type's searches, page by page; a 401 retries once with a refreshed token."""
    async with gate:
        parse = _parser(ctx, claim, rtype)
        for params in _searches(claim, rtype, page_size):
            attempt = 0  # a search retried once after a 401 (the refresh is the sync's one)
            while True:
                if stop.is_set():
                    return
                attempt += 1
                sent_with = current.authorization
                try:
                    search = reader.pages(f"{claim.base_url}/{rtype}", params, parse)
                    async with aclosing(search):  # a page asked for ahead is not left behind
                        async for page in search:
                            if stop.is_set() or rtype in progress.failed:
                                return
                            await pages.put(PageArrived(rtype, page))
                    break  # this search is read: on to the type's next one
                except Unauthorized:
                    if attempt > 1 or not await _renew(ctx, claim, current, sent_with):
                        await pages.put(AuthorizationLost(rtype))
                        stop.set()
                        return
                except PageError as exc:
                    await pages.put(TypeFailed(rtype, exc))
                    if exc.code in SOURCE_DOWN:
                        stop.set()  # the source is down or throttling: the others would be too
                    return
                except (SourceUnavailable, Fenced) as exc:
                    error = PageError("SOURCE_UNAVAILABLE", str(exc))
                    await pages.put(TypeFailed(WHOLE_SYNC, error))
                    stop.set()
                    return
                except Exception:
                    log.exception("sync fetcher failed", connection=claim.pk)
                    error = PageError("PATIENT_RETRIEVAL_ERROR", "unexpected failure")
                    await pages.put(TypeFailed(WHOLE_SYNC, error))
                    stop.set()
                    return
        await pages.put(TypeDone(rtype))


def _parser(
    ctx: SyncContext, claim: Claim, rtype: str
) -> Callable[[bytes], Awaitable[tuple[PreparedPage, str | None]]]:
    async def parse(body: bytes) -> tuple[PreparedPage, str | None]:
        page = await ctx.prepare(body, rtype=rtype, patient_id=claim.patient_id, source=claim.slug)
        if page.error is not None:
            raise PageError(*page.error)  # nothing of this page is written
        return page, page.next_url

    return parse


async def _renew(
    ctx: SyncContext, claim: Claim, current: _Current, sent_with: SourceAuthorization
) -> bool:
    """After a 401 on ``sent_with``: True when there is a newer authorization to retry with
    (another type's refresh already got it, or this one does); False when the authorization
    is gone (Basic credentials refused, the sync's refresh already spent, the grant dead)."""
    runtime = ctx.runtime
    async with current.lock:
        if current.authorization is not sent_with:
            return True  # refreshed while this request was in flight
        if sent_with.kind == "basic":  # the portal password changed
            await ctx.blocking(
                expire,
                runtime,
                connection_pk=claim.pk,
                epoch=claim.epoch,
                actor="system:sync",
                reason="credentials",
            )
            return False
        if current.refreshed:
            return False
        current.refreshed = True
        result = await ctx.blocking(
            refresh_connection, runtime, connection_pk=claim.pk, stale_sealed=sent_with.sealed
        )
        if result in (RefreshResult.EXPIRED, RefreshResult.NOT_CONNECTED):
            return False
        fresh = await ctx.blocking(  # just refreshed: take what is stored now
            source_authorization,
            runtime,
            connection_pk=claim.pk,
            epoch=claim.epoch,
            refresh_ahead=False,
        )
        if fresh is None:
            return False
        current.authorization = fresh
        return True


def _size(message: Message) -> int:
    return len(message.page.rows) if isinstance(message, PageArrived) else 0


async def _store_all(
    ctx: SyncContext, claim: Claim, pages: asyncio.Queue[Message], progress: Progress
) -> None:
    """Write what the fetchers have queued: pages are held until ``ctx.write_batch`` resources
    or ``HELD_PAGES`` pages have arrived (or the fetchers are done), then go to one write, one
    fenced transaction, so small pages or a slow database cost fewer round trips while memory
    stays bounded by a few pages. Up to ``ctx.write_depth`` writes are queued at once: with
    two, the next batch waits in the store process while one is written."""
    ended = False
    held: list[PageArrived] = []  # pages waiting to be written together
    resources = 0
    writes: deque[asyncio.Future[Counter[str]]] = deque()  # queued, in order
    try:
        while not ended:
            batch = [await pages.get()]
            while not isinstance(batch[-1], FetchEnded):
                try:
                    batch.append(pages.get_nowait())
                except asyncio.QueueEmpty:
                    break
            for message in batch:
                match message:
                    case FetchEnded():
                        ended = True
                    case TypeDone(rtype):
                        progress.done.add(rtype)
                    case TypeFailed(rtype, error):
                        progress.failed[rtype] = error
                        if error.retry_after:
                            progress.retry_after = max(progress.retry_after or 0, error.retry_after)
                    case AuthorizationLost():
                        progress.expired = True
                    case PageArrived(rtype) if rtype not in progress.failed:
                        progress.pages += 1
                        held.append(message)
                        resources += _size(message)
            # Write when enough has gathered (or the fetchers are done): a small record is
            # one transaction, a large one write_batch resources or HELD_PAGES pages at a time.
            if held and (ended or resources >= ctx.write_batch or len(held) >= HELD_PAGES):
                rows = _rows(held, progress)
                held, resources = [], 0
                if rows:
                    while len(writes) >= ctx.write_depth:
                        _written(progress, await writes.popleft())
                    writes.append(asyncio.ensure_future(ctx.write(claim, rows)))
                    del rows  # the write holds them now
        while writes:
            _written(progress, await writes.popleft())
    except asyncio.CancelledError:
        for write in writes:  # nobody waits for these any more
            write.add_done_callback(_ignore)
        raise
    except BaseException:
        # A write failed: the ones queued behind it end (written or refused) before the sync's
        # outcome is written, so that nothing lands after it.
        for result in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(result, Counter):
                _written(progress, result)
        raise


def _rows(arrivals: list[PageArrived], progress: Progress) -> list[PreparedRow]:
    """The rows of the pages to write together (those of a type that has failed since they
    arrived are left out), and what the pages say for the sync's progress. Two searches of a
    type (one per parameter set) may both find a resource: the upsert keeps its last row."""
    rows: list[PreparedRow] = []
    tally = progress.tally
    for arrival in arrivals:
        if arrival.rtype in progress.failed:
            continue
        page = arrival.page
        rows.extend(page.rows)
        progress.references.update(page.references)
        tally.foreign += page.foreign
        if page.newest > tally.newest.get(arrival.rtype, ""):
            tally.newest[arrival.rtype] = page.newest
    return rows


def _written(progress: Progress, written: Counter[str]) -> None:
    progress.written_by_type.update(written)
    progress.written += written.total()


def _ignore(future: asyncio.Future[Counter[str]]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "never retrieved" warning
