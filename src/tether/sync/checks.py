"""The checks every resource of a page passes before it is stored: the sync's hot path.

:func:`page_rows` takes one searchset page of resource type T, searched for patient P:

- every Bundle entry must hold a resource object, else the page is INVALID_RESPONSE;
- a resource of another ``resourceType`` (an OperationOutcome, an ``_include``) is skipped;
- ``id`` must be a string of 1 to 64 characters without a NUL (FHIR's id), else the page is
  INVALID_RESPONSE;
- the resource must be P's: the Patient whose id is P, or, for other types, the first of
  ``subject``/``patient``/``beneficiary`` that holds a reference must end in ``Patient/P`` (a
  resource with none of them is kept). Another patient's resources are counted, not stored;
- ``meta.lastUpdated``, when a string, is kept for the row and the incremental cursor, and
  ``meta.source`` is set to the data source's id (``meta`` is created when missing).
- ``meta.lastUpdated`` becomes tether's own: the time tether stored this version (it is the
  server of its copy; the FHIR read API and Bulk ``_since`` go by it). ``meta`` is moved to
  the end of the resource and ``lastUpdated`` to the end of ``meta``, so the JSON text ends
  with the stamp and the writer puts the time in without parsing anything.

A page that fails a check is not written at all. The resources are the parsed page's own dicts,
changed in place and never copied: this runs for every resource a sync stores.

:func:`prepare_page` is the whole per-resource half of a sync for one page, from the body's
bytes to the rows' JSON text: parse, check, stamp, serialise. It is a pure function of plain
values, so the worker runs it in a separate process (``TETHER_SYNC_PROCESSES``) beside the
event loop that does the I/O, and gets back only strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, TypeGuard

import orjson

from tether.domain import REFERENCED_TYPES
from tether.errors import PageError
from tether.fhir.bundles import next_link
from tether.fhir.search_values import NUL, SearchValue, search_values

# (type, id, the source's meta.lastUpdated, the parsed resource): a page's rows before they
# are serialised.
Row = tuple[str, str, str | None, dict[str, Any]]
PATIENT_FIELDS = ("subject", "patient", "beneficiary")
MAX_ID_LENGTH = 64


@dataclass
class Tally:
    """What the checks noticed across a sync's pages."""

    foreign: int = 0  # resources for another patient, left out
    newest: dict[str, str] = field(default_factory=dict)  # per type, the newest lastUpdated


def page_rows(
    bundle: dict[str, Any], *, rtype: str, patient_id: str, source: str, tally: Tally
) -> list[Row]:
    """The rows to store from one page (a resource repeated in the page once, the last one);
    raises :class:`~tether.errors.PageError` (INVALID_RESPONSE) when the page fails a check."""
    seen: dict[str, Row] = {}
    newest = tally.newest.get(rtype, "")
    suffix = f"Patient/{patient_id}"
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise PageError("INVALID_RESPONSE", "a Bundle entry without a resource")
        if resource.get("resourceType") != rtype:
            continue  # OperationOutcome or an _include: not ours to store
        rid = resource.get("id")
        if not _valid_id(rid):
            raise PageError("INVALID_RESPONSE", f"a {rtype} without a valid id")
        if not _belongs(resource, rtype, patient_id, suffix):
            tally.foreign += 1
            continue
        updated = _own_meta(resource, source)
        if updated is not None and updated > newest:
            newest = updated
        seen[rid] = (rtype, rid, updated, resource)
    if newest:
        tally.newest[rtype] = newest
    return list(seen.values())


def _valid_id(rid: object) -> TypeGuard[str]:
    """1 to 64 characters and no NUL (PostgreSQL's text refuses it, SQLite's JSON functions
    cut a string at it); FHIR's own pattern is stricter, but real sources stray from it."""
    return isinstance(rid, str) and 0 < len(rid) <= MAX_ID_LENGTH and NUL not in rid


def _own_meta(resource: dict[str, Any], source: str) -> str | None:
    """Make ``meta`` tether's (see above); returns the source's ``meta.lastUpdated``."""
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        meta = resource["meta"] = {}
    updated = meta.pop("lastUpdated", None)
    meta["source"] = source
    meta["lastUpdated"] = ""  # the stamp's place: last in meta
    if next(reversed(resource)) != "meta":
        del resource["meta"]
        resource["meta"] = meta  # meta last in the resource
    return updated if isinstance(updated, str) else None


def _belongs(resource: dict[str, Any], rtype: str, patient_id: str, suffix: str) -> bool:
    if rtype == "Patient":
        return resource.get("id") == patient_id
    for name in PATIENT_FIELDS:
        ref = resource.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return bool(ref["reference"].endswith(suffix))
    return True


# (type, id, the source's meta.lastUpdated, the JSON text up to the stamp, the version's
# digest, what the resource is searched by)
PreparedRow = tuple[str, str, str | None, str, str, list[SearchValue]]
STAMP_TAIL = '"}}'  # what follows the stamp: the JSON text is head + stamp + STAMP_TAIL
# A reference to one of REFERENCED_TYPES in the serialised text (orjson writes no spaces):
# relative, or absolute (resolved, and kept only on the source's own base, by the sync).
# One regular expression over text already made costs far less than walking every resource.
_REFERENCE = re.compile(
    r'"reference":"((?:https?://[^"\\]*/)?(?:'
    + "|".join(REFERENCED_TYPES)
    + r')/[A-Za-z0-9\-.]{1,64})(?:/_history/[^"\\]*)?"'
)


@dataclass(frozen=True, slots=True)
class PreparedPage:
    """One page made ready to store: its rows as JSON text, its ``next`` link, what the checks
    noticed, or the error (code, message) it fails with: nothing here needs the parsed page."""

    rows: list[PreparedRow]
    next_url: str | None
    foreign: int = 0
    newest: str = ""  # the page's newest meta.lastUpdated
    error: tuple[str, str] | None = None
    # The page's references to resources outside the patient compartment (REFERENCED_TYPES):
    # ``Type/id``, or the absolute URL as the source wrote it.
    references: frozenset[str] = frozenset()


def prepare_page(body: bytes, *, rtype: str, patient_id: str, source: str) -> PreparedPage:
    """Parse one searchset page of ``rtype`` and turn it into rows (see :func:`page_rows`)."""
    try:
        bundle = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _failed("the page is not JSON")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return _failed("the page is not a FHIR Bundle")
    if not isinstance(bundle.get("entry", []), list):
        return _failed("Bundle.entry is not a list")
    next_url = next_link(bundle.get("link"))
    if next_url is not None and not isinstance(next_url, str):
        return _failed("a next link is not a URL")
    tally = Tally()
    try:
        rows = page_rows(bundle, rtype=rtype, patient_id=patient_id, source=source, tally=tally)
    except PageError as exc:
        return PreparedPage([], None, error=(exc.code, str(exc)))
    prepared = [prepared_row(*row) for row in rows]
    found = _REFERENCE.findall
    return PreparedPage(
        prepared,
        next_url,
        foreign=tally.foreign,
        newest=tally.newest.get(rtype, ""),
        references=frozenset(ref for row in prepared for ref in found(row[3])),
    )


def prepared_row(
    rtype: str, rid: str, updated: str | None, resource: dict[str, Any]
) -> PreparedRow:
    """One checked row (``meta`` last, see :func:`page_rows`) as the writer stores it."""
    # The text ends '"lastUpdated":""}}': keep it up to the stamp's opening quote.
    head = orjson.dumps(resource)[: -len(STAMP_TAIL)]
    # A new version is new content, or the same content the source calls newer.
    digest = blake2b(head, digest_size=8)
    if updated:
        digest.update(updated.encode())
    return (rtype, rid, updated, head.decode(), digest.hexdigest(), search_values(resource, rtype))


def stamped(rtype: str, resource: dict[str, Any], *, source: str = "test") -> PreparedRow:
    """A resource (with its ``id``) made into a row without a page and without the patient
    check, for tools and tests that store resources directly."""
    resource = {"resourceType": rtype, **resource}
    meta = resource.get("meta")
    resource["meta"] = dict(meta) if isinstance(meta, dict) else {}
    updated = _own_meta(resource, source)
    return prepared_row(rtype, resource["id"], updated, resource)


def prepare_resource(
    body: bytes, *, rtype: str, rid: str, source: str
) -> tuple[PreparedRow | None, str]:
    """A resource read by id (a referenced one), as a row; (None, why) when the body is not
    that resource."""
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, "not JSON"
    if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
        return None, f"not a {rtype}"
    if resource.get("id") != rid or not _valid_id(rid):
        return None, "another id than asked for"
    updated = _own_meta(resource, source)
    return prepared_row(rtype, rid, updated, resource), ""


def _failed(message: str) -> PreparedPage:
    return PreparedPage([], None, error=("INVALID_RESPONSE", message))
