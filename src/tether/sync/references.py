"""Referenced resources: what a record points at outside the patient compartment.

A patient's searches bring back Observations, MedicationRequests and Encounters that refer to
Practitioners, PractitionerRoles, Organizations, Locations and Medications, which no
``patient=`` search returns. After a sync's searches, :func:`fetch_references` reads each one
the stored pages referred to (the page checks found them: :data:`tether.sync.checks.
PreparedPage.references`) that the connection does not hold yet, by id, ``CONCURRENCY`` at a
time and every request inside the source's budget, and hands them to the writer like any
page's rows.

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
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select, tuple_

from tether.errors import PageError, Unauthorized
from tether.fhir.paging import PageReader
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.store.models import FhirResource
from tether.sync.checks import PreparedRow, prepare_resource

log = get_logger("tether.sync")

CONCURRENCY = 4  # referenced resources read at once, per sync
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

    async def one(rtype: str, rid: str) -> None:
        async with gate:
            if stop.is_set():
                tally.missing += 1
                return
            try:
                body = await reader.get(f"{base_url}/{rtype}/{rid}")
            except Unauthorized:
                stop.set()
                tally.missing += 1
                return
            except PageError as exc:
                if exc.code in SOURCE_DOWN:
                    stop.set()
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

    await asyncio.gather(*(one(rtype, rid) for rtype, rid in todo))
    if rows:
        await write(rows)
    return tally
