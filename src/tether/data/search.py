"""FHIR R4 search parameters, read into what the store can answer (``tether.data.fhir``).

What is supported, and how the store serves it (docs/fhir.md has the table):

============================  =============================================================
``_id``                       ``fhir_resources`` unique key (member, type, id)
``_lastUpdated``              ``ix_fhir_resources_member_changed`` (tether's meta.lastUpdated)
``patient``                   the member's connections whose patient id it is (``subject``)
``connectionId``, ``_source`` the member's connections to that data source (``meta.source``)
``code`` ``category``         ``fhir_search_values`` token index (member, type, name, code)
``clinical-status`` ``status``
``date``                      ``fhir_search_values`` date indexes (lo, hi)
``_count`` ``_total``         page size; ``_total=accurate|estimate`` counts, ``none`` not
``_summary=count``            the count alone (so does ``_count=0``)
============================  =============================================================

Repeating a parameter means AND; commas inside one value mean OR (FHIR §3.1.1.4). A
parameter tether does not know is ignored under ``Prefer: handling=lenient`` (the default) and
refused under ``handling=strict``; an unknown modifier (``code:text``), an unsupported prefix
(``ap``) or a value that cannot be read is always refused (400, OperationOutcome).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.errors import InvalidRequest
from tether.fhir.search_values import INDEXED, date_range

MAX_COUNT = 1000
DEFAULT_COUNT = 50
MAX_CURSOR = 2**63 - 1
MAX_OR_VALUES = 100  # comma-separated values in one parameter
MAX_VALUE_LENGTH = 512
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
COMMON = ("_id", "_lastUpdated", "connectionId", "_source")
CONTROL = ("_count", "_cursor", "_total", "_summary", "_format")


class SearchError(InvalidRequest):
    """A search the server will not run (answered 400 with an OperationOutcome)."""


@dataclass(frozen=True)
class DateClause:
    prefix: str
    lo: str
    hi: str


@dataclass(frozen=True)
class TokenValue:
    system: str | None  # None: any system
    code: str | None  # None: any code (``system|``)
    no_system: bool = False  # ``|code``: the token has no system


@dataclass
class Search:
    """One search, parsed. Each list entry is one AND-ed parameter; its items are OR-ed."""

    rtype: str
    count: int = DEFAULT_COUNT
    after: int | None = None
    total: bool = False
    summary_count: bool = False
    ids: list[list[str]] = field(default_factory=list)
    last_updated: list[DateClause] = field(default_factory=list)
    patients: list[list[str]] = field(default_factory=list)
    sources: list[list[str]] = field(default_factory=list)
    tokens: list[tuple[str, list[TokenValue]]] = field(default_factory=list)
    dates: list[tuple[str, list[DateClause]]] = field(default_factory=list)
    # What was used, for the self and next links (FHIR: the self link says what was applied).
    used: list[tuple[str, str]] = field(default_factory=list)


def search_parameters(rtype: str) -> dict[str, str]:
    """Every parameter ``rtype`` can be searched by, with its FHIR type (CapabilityStatement)."""
    params = {"_id": "token", "_lastUpdated": "date", "connectionId": "token", "_source": "uri"}
    if rtype != "Patient":
        params["patient"] = "reference"
    for name, (kind, _) in INDEXED.get(rtype, {}).items():
        params[name] = "date" if kind == "date" else "token"
    return params


def parse_search(rtype: str, pairs: list[tuple[str, str]], *, strict: bool) -> Search:
    """Read the query string of ``GET [base]/{rtype}?…`` (see the module docstring)."""
    search = Search(rtype)
    indexed = INDEXED.get(rtype, {})
    for raw_name, value in pairs:
        name, _, modifier = raw_name.partition(":")
        if len(value) > MAX_VALUE_LENGTH:
            raise SearchError(f"the value of {raw_name} is too long")
        known = name in CONTROL or name in COMMON or name in indexed
        known = known or (name == "patient" and rtype != "Patient")
        if not known:
            if strict:
                raise SearchError(f"unknown search parameter {name!r} for {rtype}")
            continue
        if modifier:
            raise SearchError(f"the modifier :{modifier} of {name} is not supported")
        if name == "_format":
            if value not in ("json", "application/json", "application/fhir+json"):
                raise SearchError("only JSON is served (_format=json)")
            continue
        if name == "_count":
            search.count = _integer(name, value, 0, MAX_COUNT)
            if search.count == 0:  # no entries: the total alone (FHIR §3.1.1.5.5)
                search.count, search.summary_count = DEFAULT_COUNT, True
        elif name == "_cursor":
            search.after = _integer(name, value, 0, MAX_CURSOR)
            continue  # not repeated in the self link
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise SearchError("_total is none, estimate or accurate")
            search.total = value != "none"
        elif name == "_summary":
            if value == "count":
                search.summary_count = True
            elif value != "false":
                raise SearchError("_summary supports count and false only")
        elif name == "_id":
            search.ids.append(_split(name, value))
        elif name == "_lastUpdated":
            search.last_updated.append(_date_clause(name, value))
        elif name == "patient":
            search.patients.append([v.removeprefix("Patient/") for v in _split(name, value)])
        elif name in ("connectionId", "_source"):
            search.sources.append(_split(name, value))
        elif indexed[name][0] == "date":
            search.dates.append((name, [_date_clause(name, v) for v in _split(name, value)]))
        else:
            search.tokens.append((name, [_token(name, v) for v in _split(name, value)]))
        search.used.append((raw_name, value))
    return search


def _integer(name: str, value: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise SearchError(f"{name} must be an integer from {low} to {high}")
    return int(value)


def _split(name: str, value: str) -> list[str]:
    items = [v for v in value.split(",") if v]
    if not items:
        raise SearchError(f"{name} has no value")
    if len(items) > MAX_OR_VALUES:
        raise SearchError(f"{name} has more than {MAX_OR_VALUES} values")
    return items


def _date_clause(name: str, value: str) -> DateClause:
    prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    if prefix not in DATE_PREFIXES:
        raise SearchError(f"the prefix {prefix!r} of {name} is not supported")
    try:
        lo, hi = date_range(text)
    except (ValueError, OverflowError) as exc:
        raise SearchError(f"{name}: {text!r} is not a FHIR date") from exc
    return DateClause(prefix, lo, hi)


def _token(name: str, value: str) -> TokenValue:
    if "|" not in value:
        return TokenValue(None, value)
    system, _, code = value.partition("|")
    if not system and not code:
        raise SearchError(f"{name}: '|' alone is not a token")
    if not system:
        return TokenValue(None, code, no_system=True)
    return TokenValue(system, code or None)
