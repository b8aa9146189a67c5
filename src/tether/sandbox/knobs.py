"""Fault knobs: how a sandbox source misbehaves on purpose.

Knobs are per source and change at runtime (admin endpoint, CLI, or in-process through
``Sandbox.knobs(source_id)``). Fractions are applied deterministically by default: a
fraction ``f`` fires on exactly ``floor(n * f)`` of the first ``n`` requests, evenly
spread (``0.5`` fails every second request), so tests are not flaky. Set ``fault_seed``
to draw them from a seeded RNG instead.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any

MALFORMED_KINDS = ("json", "not_bundle")


class KnobError(ValueError):
    """A knob name or value that the sandbox does not accept."""


@dataclass
class Knobs:
    """The current fault settings of one source.

    - ``access_token_lifetime``: seconds an access token issued from now on lives.
    - ``rate_429`` / ``rate_500`` / ``rate_503``: fraction (0..1) of FHIR requests
      answered with that status; 429 and 503 carry ``Retry-After: retry_after``.
    - ``retry_after_date``: that ``Retry-After`` is an HTTP-date ``retry_after`` seconds from
      now (RFC 9110 §10.2.3 allows either form; some gateways send dates).
    - ``token_endpoint_faults``: also apply ``rate_429``/``rate_503`` to the token endpoint.
    - ``latency_ms``: added to every FHIR response.
    - ``stall_seconds``: every FHIR request waits this long before answering.
    - ``malformed_page``: the Nth page (1-based) of every search is broken; how is
      ``malformed_kind``: ``json`` (invalid JSON) or ``not_bundle`` (valid JSON, not a Bundle).
    - ``endless_next``: searches always carry a ``next`` link, even past the end.
    - ``forbidden_types``: resource types that answer 403 (partial-failure tests).
    - ``fault_seed``: ``None`` for evenly spread fractions, an int for a seeded RNG.
    - ``forge_id_token``: id_tokens are signed with a key the source does not publish.
    - ``refuse_id_search``: an ``_id`` search of any type but Patient answers 400, as on a
      server that only reads such resources by id.
    """

    access_token_lifetime: int = 3600
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    retry_after: int = 1
    retry_after_date: bool = False
    token_endpoint_faults: bool = False
    latency_ms: int = 0
    stall_seconds: float = 0.0
    malformed_page: int | None = None
    malformed_kind: str = "json"
    endless_next: bool = False
    forbidden_types: list[str] = field(default_factory=list)
    fault_seed: int | None = None
    forge_id_token: bool = False
    refuse_id_search: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    def update(self, changes: dict[str, Any]) -> None:
        """Validate every change first, then apply them all (all or nothing)."""
        parsed = {name: _parse(name, value) for name, value in changes.items()}
        for name, value in parsed.items():
            setattr(self, name, value)

    def reset(self, *, access_token_lifetime: int) -> None:
        defaults = Knobs(access_token_lifetime=access_token_lifetime)
        for f in fields(self):
            setattr(self, f.name, getattr(defaults, f.name))


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


_TYPES = {f.name: f.type for f in fields(Knobs)}


def _parse(name: str, value: Any) -> Any:
    """Turn a JSON value or a CLI string (``name=value``) into the knob's type."""
    if name not in _TYPES:
        raise KnobError(f"unknown knob {name!r}; known: {sorted(_TYPES)}")
    kind = _TYPES[name]
    try:
        if name == "forbidden_types":
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(item).strip() for item in items if str(item).strip()]
        if name == "malformed_kind":
            if value not in MALFORMED_KINDS:
                raise KnobError(f"malformed_kind must be one of {MALFORMED_KINDS}")
            return value
        if value is None or value in ("", "none", "null"):
            if "None" in kind:
                return None
            raise KnobError(f"knob {name!r} cannot be empty")
        if kind == "bool":
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind.startswith("int"):
            number = int(value)
            if number < 0:
                raise KnobError(f"knob {name!r} cannot be negative")
            return number
        number_f = float(value)
        if name.startswith("rate_") and not 0.0 <= number_f <= 1.0:
            raise KnobError(f"knob {name!r} is a fraction between 0 and 1")
        if number_f < 0:
            raise KnobError(f"knob {name!r} cannot be negative")
        return number_f
    except (TypeError, ValueError) as exc:
        if isinstance(exc, KnobError):
            raise
        raise KnobError(f"bad value for knob {name!r}") from exc


@dataclass
class FaultDice:
    """Decides, request by request, whether a fractional fault fires."""

    counts: dict[str, int] = field(default_factory=dict)
    rngs: dict[str, random.Random] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def roll(self, name: str, fraction: float, seed: int | None) -> bool:
        if fraction <= 0.0:
            return False
        with self.lock:
            n = self.counts.get(name, 0)
            self.counts[name] = n + 1
            if seed is None:
                return int((n + 1) * fraction) > int(n * fraction)
            rng = self.rngs.setdefault(name, random.Random(f"{seed}:{name}"))
            return rng.random() < fraction

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.rngs.clear()
