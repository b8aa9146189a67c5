"""The checks every resource of a page passes before it is stored: the sync's hot path.

:func:`page_rows` takes one searchset page of resource type T, searched for patient P:

- every Bundle entry must hold a resource object, else the page is INVALID_RESPONSE;
- a resource of another ``resourceType`` (an OperationOutcome, an ``_include``) is skipped;
- ``id`` must be a string of 1 to 64 characters (FHIR's id), else the page is INVALID_RESPONSE;
- the resource must be P's: the Patient whose id is P, or, for other types, the first of
  ``subject``/``patient``/``beneficiary`` that holds a reference must end in ``Patient/P`` (a
  resource with none of them is kept). Another patient's resources are counted, not stored;
- ``meta.lastUpdated``, when a string, is kept for the row and the incremental cursor, and
  ``meta.source`` is set to the data source's id (``meta`` is created when missing).

A page that fails a check is not written at all. The resources are the parsed page's own dicts,
changed in place and never copied: this runs for every resource a sync stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.errors import PageError
from tether.sync.fenced_writes import Row

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
        if not isinstance(rid, str) or not rid or len(rid) > MAX_ID_LENGTH:
            raise PageError("INVALID_RESPONSE", f"a {rtype} without a valid id")
        if not _belongs(resource, rtype, patient_id, suffix):
            tally.foreign += 1
            continue
        meta = resource.get("meta")
        if not isinstance(meta, dict):
            meta = resource["meta"] = {}
        updated = meta.get("lastUpdated")
        if not isinstance(updated, str):
            updated = None
        elif updated > newest:
            newest = updated
        meta["source"] = source
        seen[rid] = (rtype, rid, updated, resource)
    if newest:
        tally.newest[rtype] = newest
    return list(seen.values())


def _belongs(resource: dict[str, Any], rtype: str, patient_id: str, suffix: str) -> bool:
    if rtype == "Patient":
        return resource.get("id") == patient_id
    for name in PATIENT_FIELDS:
        ref = resource.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return bool(ref["reference"].endswith(suffix))
    return True
