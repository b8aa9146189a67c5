"""The sync's pipeline: a fetcher thread reads the source's pages while this thread stores them.

:func:`pull` runs it for one claimed connection. At most ``QUEUE_DEPTH`` pages wait between the
two threads, so memory stays bounded by a few pages whatever the size of the record, and a sync
takes about as long as the slower side. The fetcher reads each resource type's search in turn
(FHIR paging: :mod:`tether.fhir.paging`) and tells the store loop what happened with the typed
messages below. The store loop checks each page (:mod:`tether.sync.checks`) and writes every
page that has already arrived, up to ``WRITE_BATCH`` resources, in one transaction fenced by the
grant epoch (:mod:`tether.sync.fenced_writes`). What happened is gathered in a
:class:`Progress`.

A 401 gets one token refresh per sync; a second 401, a refresh that finds the grant dead, or
Basic credentials that stop working end the sync's authorization. A source that is down or
throttling stops the fetcher (the other types would fail the same way); another page error
fails its type only.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from tether.connections.tokens import (
    RefreshResult,
    SourceAuthorization,
    expire,
    refresh_connection,
    source_authorization,
)
from tether.errors import Fenced, PageError, SourceUnavailable, Unauthorized
from tether.fhir.paging import PageReader
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.sync.checks import Tally, page_rows
from tether.sync.claim import Claim
from tether.sync.fenced_writes import Row, fence, upsert_resources

log = get_logger("tether.sync")

QUEUE_DEPTH = 4  # pages waiting to be written: the memory bound is a few pages
WRITE_BATCH = 2000  # resources per write transaction, at most (pages already arrived)
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


@dataclass(frozen=True, slots=True)
class PageArrived:
    """One parsed searchset page of ``rtype``."""

    rtype: str
    bundle: dict[str, Any]


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


@dataclass
class _Current:
    """The authorization the fetcher sends now (replaced after a refresh)."""

    authorization: SourceAuthorization

    def header(self) -> str:
        return self.authorization.header


def pull(
    runtime: Runtime, *, claim: Claim, progress: Progress, page_size: int, max_pages: int
) -> None:
    """Fetch and store the claimed connection's resources, recording what happened in
    ``progress``; raises :class:`~tether.errors.Fenced` when the grant epoch moved on."""
    try:
        first = source_authorization(runtime, connection_pk=claim.pk, epoch=claim.epoch)
    except SourceUnavailable:
        progress.failed[WHOLE_SYNC] = PageError("SOURCE_UNAVAILABLE", "token refresh failed")
        return
    if first is None:
        progress.expired = True
        return
    current = _Current(first)
    pages: queue.Queue[Message] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    with runtime.http_client(source=claim.slug) as http:
        reader = PageReader(
            http=http,
            base_url=claim.base_url,
            authorization=current.header,
            max_pages=max_pages,
        )
        progress.reader = reader
        fetcher = threading.Thread(
            # In this run's context, so the fetcher's requests belong to the sync's trace.
            target=contextvars.copy_context().run,
            args=(_fetch_all, runtime, claim, reader, current, pages, stop, progress, page_size),
            name=f"sync-fetch-{claim.pk}",
            daemon=True,
        )
        fetcher.start()
        try:
            _store_all(runtime, claim, pages, progress)
        finally:
            stop.set()
            while fetcher.is_alive():  # unblock a fetcher waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    pages.get(timeout=0.05)
            fetcher.join()


def _search(claim: Claim, rtype: str, page_size: int, incremental: bool) -> dict[str, str]:
    params = {"_count": str(page_size)}
    if rtype == "Patient":
        params["_id"] = claim.patient_id
    else:
        params["patient"] = claim.patient_id
    since = claim.cursor.get(rtype)
    if incremental and since:
        params["_lastUpdated"] = f"ge{since}"
    return params


def _fetch_all(
    runtime: Runtime,
    claim: Claim,
    reader: PageReader,
    current: _Current,
    pages: queue.Queue[Message],
    stop: threading.Event,
    progress: Progress,
    page_size: int,
) -> None:
    """The fetcher thread: every type's search, page by page, onto the queue."""
    refreshed = False
    try:
        for rtype in claim.types:
            attempt = 0
            while not stop.is_set():
                attempt += 1
                try:
                    params = _search(claim, rtype, page_size, incremental=True)
                    for page in reader.pages(f"{claim.base_url}/{rtype}", params):
                        if stop.is_set() or rtype in progress.failed:
                            return
                        pages.put(PageArrived(rtype, page))
                    pages.put(TypeDone(rtype))
                    break
                except Unauthorized:
                    if current.authorization.kind == "basic":  # the portal password changed
                        expire(
                            runtime,
                            connection_pk=claim.pk,
                            epoch=claim.epoch,
                            actor="system:sync",
                            reason="credentials",
                        )
                        pages.put(AuthorizationLost(rtype))
                        return
                    if refreshed or attempt > 1:
                        pages.put(AuthorizationLost(rtype))
                        return
                    refreshed = True
                    result = refresh_connection(
                        runtime, connection_pk=claim.pk, stale_sealed=current.authorization.sealed
                    )
                    if result in (RefreshResult.EXPIRED, RefreshResult.NOT_CONNECTED):
                        pages.put(AuthorizationLost(rtype))
                        return
                    fresh = source_authorization(  # just refreshed: take what is stored now
                        runtime, connection_pk=claim.pk, epoch=claim.epoch, refresh_ahead=False
                    )
                    if fresh is None:
                        pages.put(AuthorizationLost(rtype))
                        return
                    current.authorization = fresh
                except PageError as exc:
                    pages.put(TypeFailed(rtype, exc))
                    if exc.code in SOURCE_DOWN:
                        return  # the source is down or throttling: the other types would be too
                    break
    except (SourceUnavailable, Fenced) as exc:
        pages.put(TypeFailed(WHOLE_SYNC, PageError("SOURCE_UNAVAILABLE", str(exc))))
    except Exception:
        log.exception("sync fetcher failed", connection=claim.pk)
        pages.put(
            TypeFailed(WHOLE_SYNC, PageError("PATIENT_RETRIEVAL_ERROR", "unexpected failure"))
        )
    finally:
        pages.put(FetchEnded())


def _size(message: Message) -> int:
    return len(message.bundle.get("entry") or []) if isinstance(message, PageArrived) else 0


def _store_all(
    runtime: Runtime, claim: Claim, pages: queue.Queue[Message], progress: Progress
) -> None:
    """Write what the fetcher has queued: every page that has already arrived (up to
    ``WRITE_BATCH`` resources) goes in one fenced transaction, so small pages or a slow
    database cost fewer round trips; a page that fails its checks is left out whole."""
    ended = False
    while not ended:
        batch = [pages.get()]
        arrived = _size(batch[0])
        while isinstance(batch[-1], PageArrived) and arrived < WRITE_BATCH:
            try:
                batch.append(pages.get_nowait())
            except queue.Empty:
                break
            arrived += _size(batch[-1])
        rows: list[Row] = []
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
                case PageArrived(rtype, bundle) if rtype not in progress.failed:
                    progress.pages += 1
                    try:
                        rows.extend(
                            page_rows(
                                bundle,
                                rtype=rtype,
                                patient_id=claim.patient_id,
                                source=claim.slug,
                                tally=progress.tally,
                            )
                        )
                    except PageError as exc:
                        progress.failed[rtype] = exc  # nothing of this page is written
        if rows:
            with runtime.db.write() as session:
                fence(session, claim.pk, claim.epoch, runtime.clock())
                progress.written_by_type.update(row[0] for row in rows)
                progress.written += upsert_resources(
                    session,
                    member_id=claim.member_id,
                    connection_pk=claim.pk,
                    epoch=claim.epoch,
                    rows=rows,
                )
