"""SMART App Launch scopes (v1 ``patient/Observation.read``, v2 ``patient/Observation.rs``):
which resource types a grant lets tether search, and which requested scopes a server offers.

A token response without ``scope`` grants what was asked (RFC 6749 §5.1), so ``None`` here
means "everything requested". ``patient/`` and ``user/`` scopes both let tether read the
patient's record; a v2 scope must carry ``s`` (search), since a sync searches.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

_RESOURCE_SCOPE = re.compile(
    r"^(?:patient|user)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>read|write|\*|c?r?u?d?s?)"
    r"(?:\?\S*)?$"
)


def _searchable(permission: str) -> bool:
    return permission in ("read", "*") or (permission != "write" and "s" in permission)


def searchable_types(scope: str | None, types: Iterable[str]) -> tuple[str, ...]:
    """The ``types`` (in their order) that ``scope`` lets tether search; all when ``None``."""
    wanted = tuple(types)
    if scope is None:
        return wanted
    granted = _granted(scope)
    if "*" in granted:
        return wanted
    return tuple(t for t in wanted if t in granted)


@functools.lru_cache(maxsize=4096)
def _granted(scope: str) -> frozenset[str]:
    """The types a granted scope lets tether search. Cached: a fleet's grants share a few
    scope strings, and a tenant's page of connections asks for every row's."""
    granted: set[str] = set()
    for item in scope.split():
        match = _RESOURCE_SCOPE.match(item)
        if match and _searchable(match["perm"]):
            granted.add(match["type"])
    return frozenset(granted)


def offered(requested: str, supported: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """``requested`` without the scopes a server's ``scopes_supported`` does not offer, and
    those dropped. An empty list offers everything (the field is optional); a resource scope
    is offered when it is listed or its type's wildcard with the same permission is."""
    if not supported:
        return requested, ()
    listed = set(supported)
    kept: list[str] = []
    dropped: list[str] = []
    for item in requested.split():
        match = _RESOURCE_SCOPE.match(item)
        wildcard = f"{item.split('/', 1)[0]}/*.{match['perm']}" if match else None
        if item in listed or (wildcard is not None and wildcard in listed):
            kept.append(item)
        else:
            dropped.append(item)
    return " ".join(kept), tuple(dropped)
