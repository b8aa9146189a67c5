"""The sync operation: pull a connection's patient compartment into the store.

``run_sync(runtime, connection_pk, epoch)`` is what the ``sync`` job calls; it is idempotent
and safe to run twice (a second run while the first is alive does nothing; one whose epoch is
stale does nothing). Status goes PENDING → RETRIEVING → RETRIEVED, or ERROR with ``syncErrors``.

Fetching and storing overlap: a fetcher thread reads pages (at most ``QUEUE_DEPTH`` waiting)
while this thread writes the previous one, so memory stays bounded by a few pages whatever the
source's size, and the sync takes about as long as the slower of the two.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from tether.connections import lifecycle
from tether.connections.errors import sync_error
from tether.connections.queries import require_connection
from tether.connections.sources import fhir_base_url
from tether.connections.tokens import (
    EXPIRED_CODE,
    RefreshResult,
    SourceAuthorization,
    expire,
    refresh_connection,
    source_authorization,
)
from tether.domain import RESOURCE_TYPES, Status, SyncStatus
from tether.errors import Conflict, Fenced, PageError, SourceUnavailable, Unauthorized
from tether.fhir.paging import DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, PageReader
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.store.models import Connection, DataSource
from tether.sync.fenced_writes import fence, resource_counts, upsert_resources

log = get_logger("tether.sync")

DEFAULT_RESOURCE_TYPES = RESOURCE_TYPES
QUEUE_DEPTH = 4  # pages waiting to be written: the memory bound is a few pages
WRITE_BATCH = 2000  # resources per write transaction, at most (pages already arrived)
HEARTBEAT_STALE_SECONDS = 120
DEFAULT_INTERVAL_SECONDS = 86400
RETRY_SOON_SECONDS = 900
JITTER_FRACTION = 0.1
PATIENT_FIELDS = ("subject", "patient", "beneficiary")
SOURCE_DOWN = frozenset({"SOURCE_UNAVAILABLE", "RATE_LIMITED"})


@dataclass
class SyncReport:
    status: SyncStatus
    written: int
    errors: list[dict[str, object]]
    counts: dict[str, int]


@dataclass
class _Claim:
    pk: int
    epoch: int
    member_id: str
    slug: str
    base_url: str
    patient_id: str
    types: tuple[str, ...]
    cursor: dict[str, str]
    interval: int


@dataclass
class _State:
    written: int = 0
    done: set[str] = field(default_factory=set)
    failed: dict[str, PageError] = field(default_factory=dict)
    newest: dict[str, str] = field(default_factory=dict)
    foreign: int = 0
    expired: bool = False
    retry_after: float | None = None


@dataclass
class _Holder:
    """The authorization the fetcher uses now (replaced after a refresh)."""

    current: SourceAuthorization

    def header(self) -> str:
        return self.current.header


# ---------------------------------------------------------------------------- claim
def _claim(runtime: Runtime, pk: int, epoch: int) -> _Claim | None:
    now = runtime.clock()
    with runtime.db.write() as session:
        conn = session.get(Connection, pk, with_for_update=True)
        if conn is None or conn.grant_epoch != epoch or conn.status != Status.CONNECTED:
            return None
        if (
            conn.sync_status == SyncStatus.RETRIEVING
            and conn.sync_heartbeat_at
            and (now - conn.sync_heartbeat_at < timedelta(seconds=HEARTBEAT_STALE_SECONDS))
        ):
            return None  # a live sync is already running
        source = session.get(DataSource, conn.data_source_id)
        if source is None or not conn.patient_id:
            return None
        settings = source.settings or {}
        lifecycle.set_sync_status(
            session, conn, SyncStatus.RETRIEVING, now=now, actor="system:sync"
        )
        conn.sync_heartbeat_at = now
        return _Claim(
            pk=conn.id,
            epoch=epoch,
            member_id=conn.member_id,
            slug=source.id,
            base_url=fhir_base_url(runtime, source),
            patient_id=conn.patient_id,
            types=tuple(settings.get("resource_types") or DEFAULT_RESOURCE_TYPES),
            cursor=dict(conn.sync_cursor or {}),
            interval=int(settings.get("sync_interval", DEFAULT_INTERVAL_SECONDS)),
        )


# ---------------------------------------------------------------------------- the run
def run_sync(
    runtime: Runtime,
    connection_pk: int,
    epoch: int,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> SyncReport | None:
    """Sync one connection for grant ``epoch``; None when there was nothing to do."""
    claim = _claim(runtime, connection_pk, epoch)
    if claim is None:
        return None
    state = _State()
    try:
        _pull(runtime, claim, state, page_size, max_pages)
    except Fenced:
        log.info("sync stopped: the connection changed", connection=connection_pk)
        return None
    except Exception:
        log.exception("sync failed unexpectedly", connection=connection_pk)
        state.failed["*"] = PageError("PATIENT_RETRIEVAL_ERROR", "unexpected failure")
    return _finish(runtime, claim, state)


def _pull(runtime: Runtime, claim: _Claim, state: _State, page_size: int, max_pages: int) -> None:
    try:
        first = source_authorization(runtime, connection_pk=claim.pk, epoch=claim.epoch)
    except SourceUnavailable:
        state.failed["*"] = PageError("SOURCE_UNAVAILABLE", "token refresh failed")
        return
    if first is None:
        state.expired = True
        return
    holder = _Holder(first)
    pages: queue.Queue[tuple[str, str, Any]] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    with runtime.http_client() as http:
        reader = PageReader(
            http=http,
            base_url=claim.base_url,
            authorization=holder.header,
            max_pages=max_pages,
        )
        fetcher = threading.Thread(
            target=_fetch_all,
            args=(runtime, claim, reader, holder, pages, stop, state, page_size),
            name=f"sync-fetch-{claim.pk}",
            daemon=True,
        )
        fetcher.start()
        try:
            _store_all(runtime, claim, pages, state)
        finally:
            stop.set()
            while fetcher.is_alive():  # unblock a fetcher waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    pages.get(timeout=0.05)
            fetcher.join()


def _search(claim: _Claim, rtype: str, page_size: int, incremental: bool) -> dict[str, str]:
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
    claim: _Claim,
    reader: PageReader,
    holder: _Holder,
    pages: queue.Queue[tuple[str, str, Any]],
    stop: threading.Event,
    state: _State,
    page_size: int,
) -> None:
    refreshed = False
    try:
        for rtype in claim.types:
            attempt = 0
            while not stop.is_set():
                attempt += 1
                try:
                    params = _search(claim, rtype, page_size, incremental=True)
                    for page in reader.pages(f"{claim.base_url}/{rtype}", params):
                        if stop.is_set() or rtype in state.failed:
                            return
                        pages.put(("page", rtype, page))
                    pages.put(("done", rtype, None))
                    break
                except Unauthorized:
                    if holder.current.kind == "basic":  # the portal password changed: no refresh
                        expire(runtime, claim.pk, claim.epoch, "system:sync", reason="credentials")
                        pages.put(("expired", rtype, None))
                        return
                    if refreshed or attempt > 1:
                        pages.put(("expired", rtype, None))
                        return
                    refreshed = True
                    result = refresh_connection(
                        runtime, claim.pk, stale_sealed=holder.current.sealed
                    )
                    if result in (RefreshResult.EXPIRED, RefreshResult.NOT_CONNECTED):
                        pages.put(("expired", rtype, None))
                        return
                    fresh = source_authorization(  # just refreshed: take what is stored now
                        runtime, connection_pk=claim.pk, epoch=claim.epoch, refresh_ahead=False
                    )
                    if fresh is None:
                        pages.put(("expired", rtype, None))
                        return
                    holder.current = fresh
                except PageError as exc:
                    pages.put(("error", rtype, exc))
                    if exc.code in SOURCE_DOWN:
                        return  # the source is down or throttling: the other types would be too
                    break
    except (SourceUnavailable, Fenced) as exc:
        pages.put(("error", "*", PageError("SOURCE_UNAVAILABLE", str(exc))))
    except Exception:
        log.exception("sync fetcher failed", connection=claim.pk)
        pages.put(("error", "*", PageError("PATIENT_RETRIEVAL_ERROR", "unexpected failure")))
    finally:
        pages.put(("end", "", None))


def _store_all(
    runtime: Runtime, claim: _Claim, pages: queue.Queue[tuple[str, str, Any]], state: _State
) -> None:
    """Write what the fetcher has queued: every page that has already arrived (up to
    ``WRITE_BATCH`` resources) goes in one fenced transaction, so small pages or a slow
    database cost fewer round trips; a page that fails its checks is left out whole."""
    ended = False
    while not ended:
        items = [pages.get()]
        arrived = len(items[0][2].get("entry") or []) if items[0][0] == "page" else 0
        while items[-1][0] == "page" and arrived < WRITE_BATCH:
            try:
                items.append(pages.get_nowait())
            except queue.Empty:
                break
            if items[-1][0] == "page":
                arrived += len(items[-1][2].get("entry") or [])
        rows: list[tuple[str, str, str | None, dict[str, Any]]] = []
        for kind, rtype, item in items:
            if kind == "end":
                ended = True
            elif kind == "done":
                state.done.add(rtype)
            elif kind == "error":
                state.failed[rtype] = item
                if item.retry_after:
                    state.retry_after = max(state.retry_after or 0, item.retry_after)
            elif kind == "expired":
                state.expired = True
            elif kind == "page" and rtype not in state.failed:
                try:
                    rows.extend(list(_rows(claim, rtype, item, state)))
                except PageError as exc:
                    state.failed[rtype] = exc  # nothing of this page is written
        if rows:
            with runtime.db.write() as session:
                fence(session, claim.pk, claim.epoch, runtime.clock())
                state.written += upsert_resources(
                    session,
                    member_id=claim.member_id,
                    connection_pk=claim.pk,
                    epoch=claim.epoch,
                    rows=rows,
                )


def _belongs(resource: dict[str, Any], rtype: str, patient_id: str) -> bool:
    if rtype == "Patient":
        return resource.get("id") == patient_id
    for name in PATIENT_FIELDS:
        ref = resource.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return bool(ref["reference"].endswith(f"Patient/{patient_id}"))
    return True


def _rows(
    claim: _Claim, rtype: str, bundle: dict[str, Any], state: _State
) -> Iterator[tuple[str, str, str | None, dict[str, Any]]]:
    """Check what matters on the hot path: resourceType, id, the patient reference."""
    seen: dict[str, tuple[str, str, str | None, dict[str, Any]]] = {}
    newest = state.newest.get(rtype, "")
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise PageError("INVALID_RESPONSE", "a Bundle entry without a resource")
        if resource.get("resourceType") != rtype:
            continue  # OperationOutcome or an _include: not ours to store
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid or len(rid) > 64:
            raise PageError("INVALID_RESPONSE", f"a {rtype} without a valid id")
        if not _belongs(resource, rtype, claim.patient_id):
            state.foreign += 1
            continue
        meta = resource.get("meta")
        if not isinstance(meta, dict):
            meta = resource["meta"] = {}
        updated = meta.get("lastUpdated")
        if not isinstance(updated, str):
            updated = None
        elif updated > newest:
            newest = updated
        meta["source"] = claim.slug
        seen[rid] = (rtype, rid, updated, resource)
    if newest:
        state.newest[rtype] = newest
    yield from seen.values()


# ---------------------------------------------------------------------------- finish
def _next_sync(now: datetime, claim: _Claim, state: _State, soon: bool) -> datetime:
    if state.retry_after:
        return now + timedelta(seconds=max(state.retry_after, 1))
    if soon:
        return now + timedelta(seconds=min(RETRY_SOON_SECONDS, claim.interval))
    jitter = claim.interval * JITTER_FRACTION
    return now + timedelta(seconds=claim.interval + random.uniform(-jitter, jitter))


def _finish(runtime: Runtime, claim: _Claim, state: _State) -> SyncReport | None:
    now = runtime.clock()
    failed = state.failed
    ok = [t for t in claim.types if t in state.done and t not in failed]
    errors: list[dict[str, object]] = []
    codes_seen: set[str] = set()
    if state.expired:
        errors.append(sync_error(EXPIRED_CODE))
        codes_seen.add(EXPIRED_CODE)
    for rtype, exc in failed.items():
        if exc.code not in codes_seen:
            codes_seen.add(exc.code)
            where = "" if rtype == "*" else f" ({rtype})"
            errors.append(sync_error(exc.code, f"{exc}{where}"))
    if state.foreign:
        errors.append(
            sync_error(
                "INVALID_RESPONSE",
                f"{state.foreign} resources for another patient were ignored",
            )
        )
    incomplete = [t for t in claim.types if t not in ok]
    if ok and incomplete:
        errors.insert(
            0,
            sync_error(
                "PARTIAL_RETRIEVAL",
                "not retrieved: " + ", ".join(incomplete),
            ),
        )
    status = SyncStatus.RETRIEVED if ok and not state.expired else SyncStatus.ERROR
    transient = any(e.code in ("SOURCE_UNAVAILABLE", "RATE_LIMITED") for e in failed.values())
    with runtime.db.write() as session:
        conn = session.get(Connection, claim.pk, with_for_update=True)
        if conn is None or conn.grant_epoch != claim.epoch:
            return None  # disconnected, deleted or re-authorized meanwhile
        cursor = dict(conn.sync_cursor or {})
        for rtype in ok:
            if rtype in state.newest:
                cursor[rtype] = max(cursor.get(rtype, ""), state.newest[rtype])
        conn.sync_cursor = cursor
        conn.resource_counts = resource_counts(session, claim.pk)
        conn.sync_heartbeat_at = None
        if ok:
            conn.last_synced_at = now
        if conn.status == Status.CONNECTED:
            conn.next_sync_at = _next_sync(now, claim, state, soon=transient)
        else:
            conn.next_sync_at = None
        # Keep an expiry error that the token layer recorded during this run.
        if conn.status == Status.EXPIRED and not state.expired:
            errors = [sync_error(EXPIRED_CODE), *errors]
            status = SyncStatus.ERROR
        conn.sync_errors = errors
        lifecycle.set_sync_status(
            session,
            conn,
            status,
            now=now,
            actor="system:sync",
            action=f"sync.{status.value.lower()}",
            detail={"written": state.written, "errors": sorted(codes_seen)},
        )
        counts = dict(conn.resource_counts)
    log.info(
        "sync finished",
        connection=claim.pk,
        status=status.value,
        written=state.written,
        errors=sorted(codes_seen),
    )
    return SyncReport(status=status, written=state.written, errors=errors, counts=counts)


# ---------------------------------------------------------------------------- scheduling
def request_sync(runtime: Runtime, *, member_id: str, connection_id: str) -> None:
    """ "Sync now": the sync is due immediately, and its job is queued once that is committed."""
    now = runtime.clock()
    with runtime.db.write() as session:
        conn = require_connection(
            session, member_id=member_id, connection_id=connection_id, for_update=True
        )
        if conn.status != Status.CONNECTED:
            raise Conflict(
                f"only a CONNECTED connection can sync; this one is {conn.status}",
                code="NOT_CONNECTED",
            )
        conn.next_sync_at = now
        pk, epoch = conn.id, conn.grant_epoch
    runtime.enqueue("sync", connection_id=pk, epoch=epoch)


def claim_due_syncs(
    runtime: Runtime, *, limit: int = 100, requeue_after: int = 300
) -> list[tuple[int, int]]:
    """Connections whose sync is due (or whose RETRIEVING heartbeat went stale).

    Each one found gets ``next_sync_at`` pushed ``requeue_after`` seconds ahead, so a lost
    message is re-driven later but a queued one is not queued twice.
    """
    now = runtime.clock()
    stale = now - timedelta(seconds=HEARTBEAT_STALE_SECONDS)
    with runtime.db.write() as session:
        rows = session.execute(
            select(Connection.id, Connection.grant_epoch)
            .where(
                Connection.status == Status.CONNECTED.value,
                Connection.next_sync_at <= now,
                or_(
                    Connection.sync_status != SyncStatus.RETRIEVING.value,
                    Connection.sync_heartbeat_at.is_(None),
                    Connection.sync_heartbeat_at < stale,
                ),
            )
            .order_by(Connection.next_sync_at)
            .limit(limit)
        ).all()
        ids = [row[0] for row in rows]
        if ids:
            session.execute(
                update(Connection)
                .where(Connection.id.in_(ids))
                .values(next_sync_at=now + timedelta(seconds=requeue_after))
            )
    return [(row[0], row[1]) for row in rows]
