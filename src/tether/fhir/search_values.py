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
from datetime import datetime, timedelta
from typing import Any

# (parameter name, system, code, lo, hi): a token has system/code, a date lo/hi.
SearchValue = tuple[str, str | None, str | None, str | None, str | None]

MAX_TOKEN = 255  # longer systems or codes are not indexed (nor searchable)
NUL = "\x00"  # not in a token: PostgreSQL's text refuses it, SQLite's JSON functions cut at it
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
# What nearly every dateTime a source sends looks like: to the second, in UTC (or no zone).
# The hour is 00-23 here, whatever fromisoformat accepts (newer Pythons read 24:00 as midnight).
_UTC_SECONDS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"(?:Z|[+-]00:00)?"
)
_MINUTE = timedelta(minutes=1, microseconds=-1)
_SECOND = timedelta(seconds=1, microseconds=-1)
_DAY = timedelta(days=1, microseconds=-1)


def _text(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffff``: fixed width, so text order is time order (a naive
    datetime's ``isoformat``, which also pads years before 1000, unlike ``strftime``)."""
    return moment.isoformat(timespec="microseconds")


def date_range(text: str) -> tuple[str, str]:
    """The UTC range ``(lo, hi)`` a FHIR date, dateTime or instant stands for; ValueError
    when ``text`` is none of them (OverflowError when its zone moves it out of years
    1 to 9999). Runs for every Observation a sync stores: plain (naive, UTC) datetimes."""
    utc = _UTC_SECONDS.fullmatch(text)
    if utc is not None:
        # Already UTC to the second: the range is the text itself, its fraction padded with
        # 0s and with 9s. The parse (in C) only checks the calendar: a 30 February or an hour
        # 25 is refused as below. Half the time of the general path (1.0 against 2.1 us).
        datetime.fromisoformat(text[:19])
        fraction = utc.group(1)
        digits = fraction[1:7] if fraction else ""
        at = text[:19] + "."
        return at + digits.ljust(6, "0"), at + digits.ljust(6, "9")
    m = _DATE_RE.match(text)
    if m is None:
        raise ValueError(f"not a FHIR date: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    y = int(year)
    if month is None:
        return _text(datetime(y, 1, 1)), _text(datetime(y, 12, 31) + _DAY)
    mo = int(month)
    if day is None:
        last = monthrange(y, mo)[1] if 1 <= mo <= 12 else 0  # a bad month fails below
        return _text(datetime(y, mo, 1)), _text(datetime(y, mo, last) + _DAY)
    if hour is None:
        lo = datetime(y, mo, int(day))
        return _text(lo), _text(lo + _DAY)
    # A time without a zone is read as UTC (FHIR requires a zone with a time); one to the
    # second in UTC took the fast path above.
    if second is None:
        lo = datetime(y, mo, int(day), int(hour), int(minute))
        hi = lo + _MINUTE
    elif fraction is None:
        lo = datetime(y, mo, int(day), int(hour), int(minute), int(second))
        hi = lo + _SECOND
    else:
        digits = fraction[1:7]
        micro = int(digits.ljust(6, "0"))
        lo = datetime(y, mo, int(day), int(hour), int(minute), int(second), micro)
        hi = lo + timedelta(microseconds=10 ** (6 - len(digits)) - 1)
    if zone and zone != "Z":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        if zone[0] == "+":
            lo, hi = lo - offset, hi - offset
        else:
            lo, hi = lo + offset, hi + offset
    return _text(lo), _text(hi)


def search_values(resource: dict[str, Any], rtype: str) -> list[SearchValue]:
    """What ``resource`` (of ``rtype``) is found by, for the parameters tether indexes.
    Runs for every resource a sync stores: plain loops, no helper calls per coding."""
    params = INDEXED.get(rtype)
    if not params:
        return []
    values: list[SearchValue] = []
    for name, (kind, elements) in params.items():
        for e in elements:
            element = resource.get(e)
            if element is not None:
                break
        else:
            continue
        if kind == _CC:
            for concept in element if isinstance(element, list) else (element,):
                codings = concept.get("coding") if isinstance(concept, dict) else None
                if not isinstance(codings, list):
                    continue
                for coding in codings:
                    if not isinstance(coding, dict):
                        continue
                    system, code = coding.get("system"), coding.get("code")
                    if (
                        isinstance(code, str)
                        and 0 < len(code) <= MAX_TOKEN
                        and NUL not in code
                        and (
                            system is None
                            or (
                                isinstance(system, str)
                                and 0 < len(system) <= MAX_TOKEN
                                and NUL not in system
                            )
                        )
                    ):
                        values.append((name, system, code, None, None))
        elif kind == _CODE:
            if isinstance(element, str) and 0 < len(element) <= MAX_TOKEN and NUL not in element:
                values.append((name, None, element, None, None))
        else:
            span = _period(element)
            if span is not None:
                values.append((name, None, None, *span))
    return values[:MAX_VALUES]


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
