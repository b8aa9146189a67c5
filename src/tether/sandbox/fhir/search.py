"""FHIR R4 search over one patient's record: parameters, paging and searchset Bundles.

Paging follows FHIR R4 §3.1.1.3 ("Paging"): each page carries ``self`` and, while more
match, an absolute ``next`` link on the same origin with an opaque ``_cursor``.
Supported: ``patient`` (also ``subject``), ``_id`` (on Patient the patient; on other types
a comma-separated list of ids, OR-ed, FHIR R4 §3.1.1.4.1), ``_count`` (default 50,
max 1000), ``_lastUpdated`` with ``gt``/``ge``/``lt``/``le``/``eq`` prefixes, and
``category`` (a code, or ``system|code``) on Observation.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from tether.sandbox.data.records import Window, parse_instant

DEFAULT_COUNT = 50
MAX_COUNT = 1000


class SearchError(ValueError):
    """A search parameter the sandbox cannot honour (answered 400)."""


@dataclass(frozen=True)
class SearchQuery:
    patient: str | None
    count: int
    offset: int
    window: Window
    passthrough: tuple[tuple[str, str], ...]  # what the next link repeats
    category: str | None = None  # Observation.category code (``system|code`` or ``code``)
    last_updated: bool = False  # whether the search named _lastUpdated
    ids: tuple[str, ...] | None = None  # ``_id`` on a type other than Patient

    @property
    def page_number(self) -> int:
        return self.offset // self.count + 1


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "o" or not value.isdigit():
            raise ValueError(cursor)
        return int(value)
    except ValueError as exc:
        raise SearchError("invalid _cursor") from exc


def _window(values: list[str]) -> Window:
    low = high = None
    low_inc = high_inc = False
    for raw in values:
        prefix, value = (raw[:2], raw[2:]) if raw[:2].isalpha() else ("eq", raw)
        try:
            when = parse_instant(value)
        except ValueError as exc:
            raise SearchError(f"invalid _lastUpdated {raw!r}") from exc
        if prefix in ("gt", "ge", "eq", "sa"):
            low, low_inc = when, prefix in ("ge", "eq")
        if prefix in ("lt", "le", "eq", "eb"):
            high, high_inc = when, prefix in ("le", "eq")
        if prefix not in ("gt", "ge", "lt", "le", "eq", "sa", "eb"):
            raise SearchError(f"unsupported _lastUpdated prefix {prefix!r}")
    return Window(low, low_inc, high, high_inc)


def parse_query(pairs: list[tuple[str, str]], rtype: str = "Patient") -> SearchQuery:
    """Read the parameters of a search-type interaction of ``rtype``."""
    patient = None
    ids: list[str] | None = None
    count = DEFAULT_COUNT
    offset = 0
    last_updated: list[str] = []
    category: str | None = None
    keep: list[tuple[str, str]] = []
    for name, value in pairs:
        if name == "_id" and rtype != "Patient":
            ids = [*(ids or []), *(i for i in value.split(",") if i)]
            keep.append((name, value))
        elif name in ("patient", "subject", "_id", "beneficiary"):
            patient = value.removeprefix("Patient/")
            keep.append((name, value))
        elif name == "_count":
            if not value.isdigit():
                raise SearchError("_count must be a non-negative integer")
            count = max(1, min(MAX_COUNT, int(value)))
        elif name == "_lastUpdated":
            last_updated.append(value)
            keep.append((name, value))
        elif name == "_cursor":
            offset = decode_cursor(value)
        elif name == "category":
            category = value.rsplit("|", 1)[-1]
            keep.append((name, value))
    keep.append(("_count", str(count)))
    return SearchQuery(
        patient,
        count,
        offset,
        _window(last_updated),
        tuple(keep),
        category=category,
        last_updated=bool(last_updated),
        ids=None if ids is None else tuple(dict.fromkeys(ids)),
    )


def has_category(body: bytes, code: str) -> bool:
    """Whether a serialised resource has a ``category`` coding with ``code``."""
    resource = json.loads(body)
    for concept in resource.get("category") or []:
        for coding in concept.get("coding") or [] if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("code") == code:
                return True
    return False


def page_url(base: str, query: SearchQuery, offset: int) -> str:
    params = list(query.passthrough)
    if offset:
        params.append(("_cursor", encode_cursor(offset)))
    return f"{base}?{urlencode(params)}"


def searchset(
    *,
    type_url: str,
    fhir_base: str,
    rtype: str,
    entries: list[tuple[str, bytes]],
    total: int | None,
    self_url: str,
    next_url: str | None,
) -> bytes:
    """A searchset Bundle assembled from already-serialized resources."""
    links = [f'{{"relation":"self","url":{_js(self_url)}}}']
    if next_url:
        links.append(f'{{"relation":"next","url":{_js(next_url)}}}')
    head = '{"resourceType":"Bundle","type":"searchset",'
    if total is not None:
        head += f'"total":{total},'
    head += f'"link":[{",".join(links)}],"entry":['
    parts = [
        b'{"fullUrl":'
        + _js(f"{fhir_base}/{rtype}/{rid}").encode()
        + b',"resource":'
        + body
        + b',"search":{"mode":"match"}}'
        for rid, body in entries
    ]
    return head.encode() + b",".join(parts) + b"]}"


def _js(text: str) -> str:
    return json.dumps(text)
