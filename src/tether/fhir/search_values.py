"""The values tether's FHIR search indexes, taken from a resource when it is stored.

FHIR R4 defines each search parameter by a path into the resource. The ones tether serves
from an index (``tether.data.search`` says which) are extracted here once, at store time, into
rows of ``fhir_search_values``: a *token* (``system``, ``code``) or a *date* range (``lo``,
``hi``). A search then reads an index instead of every stored resource.

Dates become the closed range of instants the value stands for, in UTC, written as
``YYYY-MM-DDTHH:MM:SS.ffffff`` so that text order is time order: ``2020`` stands for the
whole year, ``2020-05-01T10:00:00+02:00`` for one second. A date without a time has no zone in
FHIR; tether reads it as UTC.
"""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import UTC, datetime, timedelta
from typing import Any

# (parameter name, system, code, lo, hi): a token has system/code, a date lo/hi.
SearchValue = tuple[str, str | None, str | None, str | None, str | None]

MAX_TOKEN = 255  # longer systems or codes are not indexed (nor searchable)
MAX_VALUES = 64  # per resource: a resource with more codings is indexed by its first ones

_CC = "codeable"  # a CodeableConcept (or a list of them): every coding is a token
_CODE = "code"  # a plain code: one token without a system
_DATE = "date"  # a date, dateTime, instant or Period (effective[x])

# Resource type → parameter → (kind, element names, tried in order: the first present wins)
INDEXED: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "Observation": {
        "code": (_CC, ("code",)),
        "category": (_CC, ("category",)),
        "date": (
            _DATE,
            ("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
        ),
    },
    "Condition": {
        "code": (_CC, ("code",)),
        "category": (_CC, ("category",)),
        "clinical-status": (_CC, ("clinicalStatus",)),
    },
    "AllergyIntolerance": {
        "clinical-status": (_CC, ("clinicalStatus",)),
    },
    "MedicationRequest": {
        "status": (_CODE, ("status",)),
    },
}

_DATE_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def date_range(text: str) -> tuple[str, str]:
    """The UTC range ``(lo, hi)`` a FHIR date, dateTime or instant stands for; ValueError
    when ``text`` is none of them."""
    m = _DATE_RE.match(text)
    if m is None:
        raise ValueError(f"not a FHIR date: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    if hour is not None and zone is None:
        zone = "Z"  # a time without a zone: read as UTC (FHIR requires a zone with a time)
    tz = UTC
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz_offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * sign
    else:
        tz_offset = timedelta(0)
    y = int(year)
    if month is None:
        lo = datetime(y, 1, 1, tzinfo=tz)
        hi = datetime(y, 12, 31, 23, 59, 59, 999999, tzinfo=tz)
    elif day is None:
        mo = int(month)
        lo = datetime(y, mo, 1, tzinfo=tz)
        hi = datetime(y, mo, monthrange(y, mo)[1], 23, 59, 59, 999999, tzinfo=tz)
    elif hour is None:
        lo = datetime(y, int(month), int(day), tzinfo=tz)
        hi = lo + timedelta(days=1, microseconds=-1)
    else:
        base = datetime(y, int(month), int(day), int(hour), int(minute), tzinfo=tz)
        if second is None:
            lo, hi = base, base + timedelta(minutes=1, microseconds=-1)
        elif fraction is None:
            lo = base.replace(second=int(second))
            hi = lo + timedelta(seconds=1, microseconds=-1)
        else:
            digits = fraction[1:7]
            lo = base.replace(second=int(second), microsecond=int(digits.ljust(6, "0")))
            hi = lo + timedelta(microseconds=10 ** (6 - len(digits)) - 1)
        lo, hi = lo - tz_offset, hi - tz_offset
    return lo.strftime(_FORMAT), hi.strftime(_FORMAT)


def search_values(resource: dict[str, Any], rtype: str) -> list[SearchValue]:
    """What ``resource`` (of ``rtype``) is found by, for the parameters tether indexes."""
    params = INDEXED.get(rtype)
    if not params:
        return []
    values: list[SearchValue] = []
    for name, (kind, elements) in params.items():
        element = next((resource[e] for e in elements if e in resource), None)
        if element is None:
            continue
        if kind == _CC:
            concepts = element if isinstance(element, list) else [element]
            for concept in concepts:
                codings = concept.get("coding") if isinstance(concept, dict) else None
                for coding in codings if isinstance(codings, list) else ():
                    if not isinstance(coding, dict):
                        continue
                    system, code = coding.get("system"), coding.get("code")
                    if isinstance(code, str) and _short(code) and _fits(system):
                        values.append((name, system, code, None, None))
        elif kind == _CODE:
            if isinstance(element, str) and _short(element):
                values.append((name, None, element, None, None))
        else:
            span = _period(element)
            if span is not None:
                values.append((name, None, None, *span))
    return values[:MAX_VALUES]


def _short(text: str) -> bool:
    return 0 < len(text) <= MAX_TOKEN


def _fits(system: object) -> bool:
    return system is None or (isinstance(system, str) and _short(system))


def _period(element: object) -> tuple[str, str] | None:
    try:
        if isinstance(element, str):
            return date_range(element)
        if isinstance(element, dict):  # a Period: an open end is open
            start, end = element.get("start"), element.get("end")
            lo = date_range(start)[0] if isinstance(start, str) else "0001-01-01T00:00:00.000000"
            hi = date_range(end)[1] if isinstance(end, str) else "9999-12-31T23:59:59.999999"
            return lo, hi
    except (ValueError, OverflowError):
        return None  # not a date tether can read: not indexed
    return None
