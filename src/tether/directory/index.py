"""An in-process search index over the directory, rebuilt when the directory changes.

The store stays the truth; this is a cache. Each process keeps one index per database and
checks the directory's version (``max(updated_at)``, one index lookup) on every search, so an
import by any process is seen by the next search everywhere. Sources are numbered in name
order, so ordering a result is sorting small integers, and "names that start with the query
come first" is a contiguous range found by bisection. A two-letter prefix matching a fifth of
a 50,000-source directory costs a few set unions and a sort of ints, not a database sort.
"""

from __future__ import annotations

import bisect
import math
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tether.directory.text import prefix_upper_bound
from tether.store.models import DataSource, DataSourceTerm

EARTH_RADIUS_MILES = 3958.8


def distance_miles(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in miles (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(math.sqrt(a))


@dataclass(frozen=True)
class Hit:
    source_id: str
    distance: float | None = None


class DirectoryIndex:
    """Live (not retired) sources of one directory version, numbered in name order."""

    def __init__(self, session: Session, version: datetime | None) -> None:
        self.version = version
        rows = session.execute(
            select(
                DataSource.id, DataSource.sort_name, DataSource.type, DataSource.lat, DataSource.lon
            )
            .where(DataSource.retired.is_(False))
            .order_by(DataSource.sort_name, DataSource.id)
        ).all()
        self.ids = [r[0] for r in rows]
        self.names = [r[1] for r in rows]
        self.types = [r[2] for r in rows]
        number = {sid: i for i, sid in enumerate(self.ids)}
        self.by_type: dict[str, array[int]] = {}
        for i, kind in enumerate(self.types):
            self.by_type.setdefault(kind, array("I")).append(i)
        located = sorted(
            (r[3], i, r[4]) for i, r in enumerate(rows) if r[3] is not None and r[4] is not None
        )
        self.lats = [lat for lat, _, _ in located]
        self.located = [(i, lat, lon) for lat, i, lon in located]
        postings: dict[str, array[int]] = {}
        for term, sid in session.execute(select(DataSourceTerm.term, DataSourceTerm.source_id)):
            n = number.get(sid)
            if n is not None:
                postings.setdefault(term, array("I")).append(n)
        self.terms = sorted(postings)
        self.postings = [postings[t] for t in self.terms]

    def _prefix(self, word: str) -> set[int]:
        lo = bisect.bisect_left(self.terms, word)
        hi = bisect.bisect_left(self.terms, prefix_upper_bound(word), lo)
        found: set[int] = set()
        for posting in self.postings[lo:hi]:
            found.update(posting)
        return found

    def matches(self, words: list[str], source_type: str | None) -> set[int] | None:
        """Sources matching every word (None: no word given, i.e. everything)."""
        result: set[int] | None = None
        for word in sorted(words, key=len, reverse=True):  # longest first: smallest sets
            found = self._prefix(word)
            result = found if result is None else result & found
            if not result:
                return set()
        if source_type is not None:
            of_type = self.by_type.get(source_type, array("I"))
            result = (
                set(of_type)
                if result is None
                else {i for i in result if self.types[i] == source_type}
            )
        return result

    def page(
        self, words: list[str], source_type: str | None, limit: int, offset: int
    ) -> tuple[list[Hit], int]:
        if not words:  # already in name order: slice, don't sort
            everything: Sequence[int] = (
                range(len(self.ids))
                if source_type is None
                else self.by_type.get(source_type, array("I"))
            )
            return [Hit(self.ids[i]) for i in everything[offset : offset + limit]], len(everything)
        found = self.matches(words, source_type)
        assert found is not None
        starts = " ".join(words)
        a = bisect.bisect_left(self.names, starts) if starts else 0
        b = bisect.bisect_left(self.names, prefix_upper_bound(starts), a) if starts else 0
        ordered = sorted(found, key=lambda i: (not a <= i < b, i))
        return [Hit(self.ids[i]) for i in ordered[offset : offset + limit]], len(ordered)

    def near(
        self,
        words: list[str],
        source_type: str | None,
        lat: float,
        lon: float,
        radius: float,
        limit: int,
        offset: int,
    ) -> tuple[list[Hit], int]:
        found = self.matches(words, source_type)
        dlat = radius / 69.0
        lo = bisect.bisect_left(self.lats, lat - dlat)
        hi = bisect.bisect_right(self.lats, lat + dlat)
        scored = []
        for i, slat, slon in self.located[lo:hi]:
            if found is not None and i not in found:
                continue
            d = distance_miles(lat, lon, slat, slon)
            if d <= radius:
                scored.append((d, i))
        scored.sort()
        chosen = scored[offset : offset + limit]
        return [Hit(self.ids[i], round(d, 2)) for d, i in chosen], len(scored)


class IndexCache:
    """One index per database URL in this process, rebuilt when the directory version moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[str, DirectoryIndex] = {}

    def get(self, session: Session) -> DirectoryIndex:
        key = str(session.get_bind().engine.url)
        version = session.scalar(select(func.max(DataSource.updated_at)))
        current = self._indexes.get(key)
        if current is not None and current.version == version:
            return current
        with self._lock:
            current = self._indexes.get(key)
            if current is None or current.version != version:
                current = DirectoryIndex(session, version)
                self._indexes[key] = current
            return current


INDEXES = IndexCache()
