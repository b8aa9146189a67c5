"""Per-source request counters, so tests can assert what the source really served
(for example "exactly one refresh at the source")."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def reset(self) -> None:
        with self._lock:
            for f in fields(self):
                if not f.name.startswith("_"):
                    setattr(self, f.name, 0)
