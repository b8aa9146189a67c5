"""Per-source request counters, so tests can assert what the source really served
(for example "exactly one refresh at the source")."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields

WINDOW_SECONDS = 60.0


@dataclass
class Counters:
    """How many requests of each kind a source received since start (or ``reset``)."""

    authorize_pages: int = 0
    consents: int = 0
    token_requests: int = 0
    code_exchanges: int = 0
    refreshes: int = 0
    revocations: int = 0
    introspections: int = 0
    fhir_requests: int = 0
    faults: int = 0
    # FHIR requests being answered right now, the most ever at once, and the most that arrived
    # within any 60 seconds: what a client's request budget is checked against.
    fhir_in_flight: int = 0
    fhir_max_in_flight: int = 0
    fhir_max_per_minute: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _arrivals: deque[float] = field(default_factory=deque, repr=False, compare=False)

    def bump(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def fhir_started(self) -> None:
        """A FHIR request arrived (call :meth:`fhir_finished` once it is answered)."""
        now = time.monotonic()
        with self._lock:
            self.fhir_requests += 1
            self.fhir_in_flight += 1
            self.fhir_max_in_flight = max(self.fhir_max_in_flight, self.fhir_in_flight)
            arrivals = self._arrivals
            arrivals.append(now)
            while arrivals and arrivals[0] <= now - WINDOW_SECONDS:
                arrivals.popleft()
            self.fhir_max_per_minute = max(self.fhir_max_per_minute, len(arrivals))

    def fhir_finished(self) -> None:
        with self._lock:
            self.fhir_in_flight -= 1

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def reset(self) -> None:
        with self._lock:
            for f in fields(self):
                if not f.name.startswith("_") and f.name != "fhir_in_flight":
                    setattr(self, f.name, 0)
            self._arrivals.clear()
