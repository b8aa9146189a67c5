"""Referenced resources: what a record points at outside the patient compartment.

A patient's searches bring back Observations, MedicationRequests and Encounters that refer to
Practitioners, PractitionerRoles, Organizations, Locations and Medications, which no
``patient=`` search returns. After a sync's searches, :func:`fetch_references` reads the ones
the stored pages referred to (the page checks found them: :data:`tether.sync.checks.
PreparedPage.references`) that the connection does not hold yet, ``CONCURRENCY`` requests at
a time and every one inside the source's budget, and hands them to the writer like any page's
rows:

- several of one type in one search, ``Type?_id=a,b,c`` (FHIR R4 §3.1.1.4.1: ``_id`` is a
  search parameter of every resource, and a comma ORs its values), ``ID_CHUNK`` ids a search:
  a typical record's six Practitioners are one request, not six, against a source's
  per-minute budget and its latency;
- one alone, or one the search did not bring back, or all of them when the source refuses
  the search (some servers only read these types by id), by id: ``Type/id``.

- Only references on the source's own FHIR base are followed; one to another server is
  counted (``offsite``), never fetched.
- A reference the source does not answer (404, 403, garbage, another id) is counted as
  ``missing``: the record is what the source gave, not a sync error.
- A source that is down or throttling, or a token it stops accepting, ends the phase: what
  is left is missing until the next sync.
- At most ``MAX_PER_SYNC`` are read in one sync; the rest come with the next.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select, tuple_

from tether.errors import PageError, Unauthorized
from tether.fhir.paging import PageReader
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.store.models import FhirResource
from tether.sync.checks import PreparedPage, PreparedRow, prepare_page, prepare_resource

log = get_logger("tether.sync")

CONCURRENCY = 4  # requests for referenced resources at once, per sync
ID_CHUNK = 50  # ids in one _id search: the URL stays near 3 KB (FHIR ids are ≤ 64 characters)
MAX_PER_SYNC = 1000
_STORED_CHUNK = 500  # (type, id) pairs per look-up query
SOURCE_DOWN = frozenset({"SOURCE_UNAVAILABLE", "RATE_LIMITED"})


@dataclass
class ReferenceTally:
    fetched: int = 0
    missing: int = 0
    offsite: int = 0


def resolve(reference: str, base_url: str) -> tuple[str, str] | None:
    """``(type, id)`` of a reference on the source's FHIR base; None for another server."""
    if reference.startswith(("http://", "https://")):
        base = base_url.rstrip("/") + "/"
        if not reference.startswith(base):
            return None
        reference = reference[len(base) :]
    rtype, _, rid = reference.partition("/")
    if not rid or "/" in rid or not rid.strip("."):
        return None
    return rtype, rid


def stored_keys(
    runtime: Runtime, connection_pk: int, keys: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of ``keys`` the connection already holds."""
    wanted = list(keys)
    found: set[tuple[str, str]] = set()
    with runtime.db.read() as session:
        for start in range(0, len(wanted), _STORED_CHUNK):
            chunk = wanted[start : start + _STORED_CHUNK]
            rows = session.execute(
                select(FhirResource.resource_type, FhirResource.resource_id).where(
                    FhirResource.connection_id == connection_pk,
                    tuple_(FhirResource.resource_type, FhirResource.resource_id).in_(chunk),
                )
            )
            found.update((t, i) for t, i in rows)
    return found


Blocking = Callable[..., Awaitable[object]]


async def fetch_references(
    *,
    runtime: Runtime,
    blocking: Blocking,
    reader: PageReader,
    connection_pk: int,
    base_url: str,
    source: str,
    patient_id: str,
    references: Iterable[str],
    types: Iterable[str],
    write: Callable[[list[PreparedRow]], Awaitable[None]],
) -> ReferenceTally:
    """Read the referenced resources of ``types`` the connection lacks, and ``write`` them."""
    tally = ReferenceTally()
    allowed = set(types)
    wanted: set[tuple[str, str]] = set()
    for reference in references:
        target = resolve(reference, base_url)
        if target is None:
            tally.offsite += 1
        elif target[0] in allowed:
            wanted.add(target)
    if not wanted:
        return tally
    held = await blocking(stored_keys, runtime, connection_pk, wanted)
    assert isinstance(held, set)
    todo = sorted(wanted - held)[:MAX_PER_SYNC]
    rows: list[PreparedRow] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    stop = asyncio.Event()

    async def request(url: str, params: dict[str, str] | None = None) -> bytes | PageError | None:
        """One request of the phase (within ``gate``): the body, the error of a request the
        source refused, or None once the phase is over (the source is down or throttling,
        or no longer takes the token; ``stop`` is set)."""
        if stop.is_set():
            return None
        try:
            return await reader.get(url, params)
        except Unauthorized:
            stop.set()
            return None
        except PageError as exc:
            if exc.code in SOURCE_DOWN:
                stop.set()
                return None
            return exc

    async def one(rtype: str, rid: str) -> None:
        """Read ``rtype/rid`` by id."""
        async with gate:
            body = await request(f"{base_url}/{rtype}/{rid}")
            if not isinstance(body, bytes):
                tally.missing += 1
                return
            prepared = await blocking(prepare_resource, body, rtype=rtype, rid=rid, source=source)
            assert isinstance(prepared, tuple)
            row, why = prepared
            if row is None:
                log.info("referenced resource refused", type=rtype, reason=why)
                tally.missing += 1
                return
            rows.append(row)
            tally.fetched += 1

    async def search(rtype: str, ids: list[str]) -> None:
        """Search ``ids`` of ``rtype`` by ``_id``; read by id what the search did not give."""
        found: dict[str, PreparedRow] = {}
        async with gate:
            body = await request(
                f"{base_url}/{rtype}", {"_id": ",".join(ids), "_count": str(len(ids))}
            )
            if body is None:
                tally.missing += len(ids)
                return
            if isinstance(body, PageError):
                log.info("referenced resources not searchable", type=rtype, code=body.code)
            else:
                page = await blocking(
                    prepare_page, body, rtype=rtype, patient_id=patient_id, source=source
                )
                assert isinstance(page, PreparedPage)
                asked = set(ids)
                # Only what was asked for counts: a server that ignored _id answered others.
                found = {row[1]: row for row in page.rows if row[1] in asked}
        rows.extend(found.values())
        tally.fetched += len(found)
        await asyncio.gather(*(one(rtype, rid) for rid in ids if rid not in found))

    by_type: dict[str, list[str]] = defaultdict(list)
    for rtype, rid in todo:
        by_type[rtype].append(rid)
    work = []
    for rtype, ids in by_type.items():
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            work.append(search(rtype, chunk) if len(chunk) > 1 else one(rtype, chunk[0]))
    await asyncio.gather(*work)
    if rows:
        await write(rows)
    return tally
