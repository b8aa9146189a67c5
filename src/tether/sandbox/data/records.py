"""One patient's compartment as the FHIR API reads it.

Resources are kept as serialized JSON (bytes) ordered by ``meta.lastUpdated`` per type,
so ``_lastUpdated`` filters are a binary search and a page is a slice. A
:class:`VolumeRecord` holds nothing: resource *i* is computed from its index.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


def iso(epoch: float) -> str:
    """FHIR ``instant`` (``meta.lastUpdated``) for an epoch time, in UTC."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def parse_instant(text: str) -> float:
    """Epoch seconds for a FHIR date/dateTime/instant (a bare date is midnight UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass(frozen=True)
class Window:
    """A ``_lastUpdated`` range: ``low < t`` (or ``<=``) and ``t < high`` (or ``<=``)."""

    low: float | None = None
    low_inclusive: bool = False
    high: float | None = None
    high_inclusive: bool = False


ALL = Window()


class Record(Protocol):
    """What the FHIR API needs from a patient's data."""

    patient_id: str

    def types(self) -> list[str]: ...
    def count(self, rtype: str, window: Window) -> int: ...
    def page(
        self, rtype: str, window: Window, offset: int, size: int
    ) -> list[tuple[str, bytes]]: ...
    def read(self, rtype: str, rid: str) -> bytes | None: ...
    def total(self) -> int: ...


Entry = tuple[float, str, bytes]  # (lastUpdated epoch, id, JSON)


class MaterializedRecord:
    """A patient whose resources are all in memory (mutable: ``touch`` and ``add``)."""

    def __init__(self, patient_id: str, entries: dict[str, list[Entry]]) -> None:
        self.patient_id = patient_id
        self._lock = threading.Lock()
        self._by_type = {t: sorted(e, key=lambda x: (x[0], x[1])) for t, e in entries.items()}
        self._keys = {t: [x[0] for x in e] for t, e in self._by_type.items()}
        self._index = {(t, x[1]): x for t, e in self._by_type.items() for x in e}

    def types(self) -> list[str]:
        return sorted(self._by_type)

    def total(self) -> int:
        return sum(len(e) for e in self._by_type.values())

    def _bounds(self, rtype: str, window: Window) -> tuple[int, int]:
        keys = self._keys.get(rtype, [])
        lo, hi = 0, len(keys)
        if window.low is not None:
            find = bisect.bisect_left if window.low_inclusive else bisect.bisect_right
            lo = find(keys, window.low)
        if window.high is not None:
            find = bisect.bisect_right if window.high_inclusive else bisect.bisect_left
            hi = find(keys, window.high)
        return lo, max(lo, hi)

    def count(self, rtype: str, window: Window) -> int:
        with self._lock:
            lo, hi = self._bounds(rtype, window)
            return hi - lo

    def page(self, rtype: str, window: Window, offset: int, size: int) -> list[tuple[str, bytes]]:
        with self._lock:
            lo, hi = self._bounds(rtype, window)
            start = lo + offset
            return [
                (x[1], x[2]) for x in self._by_type.get(rtype, [])[start : min(hi, start + size)]
            ]

    def read(self, rtype: str, rid: str) -> bytes | None:
        with self._lock:
            found = self._index.get((rtype, rid))
            return None if found is None else found[2]

    def touch(self, n: int, now: float) -> list[str]:
        """Bump ``meta.lastUpdated`` of the ``n`` least recently updated resources
        (Patient excluded) to ``now``; answers their ``Type/id``."""
        with self._lock:
            oldest = sorted(
                (x[0], t, x[1]) for t, e in self._by_type.items() if t != "Patient" for x in e
            )[:n]
            changed = []
            for _, rtype, rid in oldest:
                resource = json.loads(self._index[(rtype, rid)][2])
                changed.append(self._put(rtype, resource, now))
            return changed

    def add(self, resources: Iterable[dict[str, Any]], now: float) -> list[str]:
        """Add (or replace) resources, stamped ``now``; they must be in the compartment."""
        with self._lock:
            return [self._put(r["resourceType"], dict(r), now) for r in resources]

    def _put(self, rtype: str, resource: dict[str, Any], now: float) -> str:
        rid = str(resource["id"])
        old = self._index.pop((rtype, rid), None)
        entries = self._by_type.setdefault(rtype, [])
        if old is not None:
            entries.remove(old)
        meta = dict(resource.get("meta") or {})
        meta["lastUpdated"] = iso(now)
        meta["versionId"] = str(int(meta.get("versionId", "1")) + (old is not None))
        resource["meta"] = meta
        entry = (now, rid, json.dumps(resource, separators=(",", ":")).encode())
        bisect.insort(entries, entry, key=lambda x: (x[0], x[1]))
        self._keys[rtype] = [x[0] for x in entries]
        self._index[(rtype, rid)] = entry
        return f"{rtype}/{rid}"


class VolumeRecord:
    """A benchmark patient: one Patient plus ``size`` Observations made on demand.

    Observation *i* has id ``{patient_id}-obs-{i}`` and ``meta.lastUpdated`` =
    ``base + i`` seconds, so order, filters and pages are arithmetic.
    """

    def __init__(self, patient_id: str, patient: dict[str, Any], size: int, base: float) -> None:
        self.patient_id = patient_id
        self.size = size
        self.base = base
        patient = dict(patient, meta=dict(patient.get("meta") or {}, lastUpdated=iso(base)))
        self._patient = json.dumps(patient, separators=(",", ":")).encode()
        self._days: dict[int, str] = {}  # day number since the epoch -> its date, for _when

    def types(self) -> list[str]:
        return ["Observation", "Patient"]

    def total(self) -> int:
        return self.size + 1

    def _bounds(self, window: Window) -> tuple[int, int]:
        lo, hi = 0, self.size
        if window.low is not None:
            edge = window.low - self.base
            lo = math.ceil(edge) if window.low_inclusive else math.floor(edge) + 1
        if window.high is not None:
            edge = window.high - self.base
            hi = math.floor(edge) + 1 if window.high_inclusive else math.ceil(edge)
        lo, hi = max(0, lo), min(self.size, hi)
        return lo, max(lo, hi)

    def count(self, rtype: str, window: Window) -> int:
        if rtype == "Patient":
            return 1
        if rtype != "Observation":
            return 0
        lo, hi = self._bounds(window)
        return hi - lo

    def page(self, rtype: str, window: Window, offset: int, size: int) -> list[tuple[str, bytes]]:
        if rtype == "Patient":
            return [(self.patient_id, self._patient)] if offset == 0 else []
        if rtype != "Observation":
            return []
        lo, hi = self._bounds(window)
        start = lo + offset
        return [self._observation(i) for i in range(start, min(hi, start + size))]

    def read(self, rtype: str, rid: str) -> bytes | None:
        if rtype == "Patient":
            return self._patient if rid == self.patient_id else None
        prefix = f"{self.patient_id}-obs-"
        if rtype != "Observation" or not rid.startswith(prefix):
            return None
        index = rid.removeprefix(prefix)
        if not index.isdigit() or int(index) >= self.size:
            return None
        return self._observation(int(index))[1]

    def _observation(self, i: int) -> tuple[str, bytes]:
        rid = f"{self.patient_id}-obs-{i}"
        when = self._when(i)
        p0, p1, p2, p3, p4, p5 = _VOLUME_PIECES
        value = str(55 + (i * 7919) % 50)
        pieces = (p0, rid, p1, when, p2, self.patient_id, p3, when, p4, value, p5)
        return rid, "".join(pieces).encode()

    def _when(self, i: int) -> str:
        """``iso(base + i)``. The sandbox serves these pages to the sync benchmark on the same
        cores as the sync it measures, so with a whole-second base the date is looked up per
        day and the time of day in two small tables."""
        if not self.base.is_integer():
            return iso(self.base + i)
        day, second = divmod(int(self.base) + i, 86_400)
        date = self._days.get(day)
        if date is None:
            date = self._days[day] = iso(day * 86_400)[:10]
        hour, rest = divmod(second, 3600)
        return f"{date}T{_HOURS[hour]}:{_MINUTES_SECONDS[rest]}.000Z"


_VOLUME_TEMPLATE = json.dumps(
    {
        "resourceType": "Observation",
        "id": "@RID@",
        "meta": {
            "lastUpdated": "@WHEN@",
            "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-heart-rate"],
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"}
            ],
        },
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "text": "Heart rate",
        },
        "subject": {"reference": "Patient/@PATIENT@"},
        "effectiveDateTime": "@WHEN@",
        "valueQuantity": {
            "value": "@VALUE@",
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    },
    separators=(",", ":"),
)
# The template cut at its slots, in the order they come: id, meta.lastUpdated, the subject's
# patient, effectiveDateTime, the value. Joining the pieces costs a fraction of replacing.
_VOLUME_SLOTS = re.compile(r'@RID@|@WHEN@|@PATIENT@|"@VALUE@"')
_VOLUME_PIECES = tuple(_VOLUME_SLOTS.split(_VOLUME_TEMPLATE))
assert _VOLUME_SLOTS.findall(_VOLUME_TEMPLATE) == [
    "@RID@", "@WHEN@", "@PATIENT@", "@WHEN@", '"@VALUE@"'
]  # fmt: skip
_HOURS = [f"{h:02d}" for h in range(24)]
_MINUTES_SECONDS = [f"{m:02d}:{s:02d}" for m in range(60) for s in range(60)]
