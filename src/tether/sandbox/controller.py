"""The in-process handle on a running sandbox (``app.sandbox``): knobs, counters,
admin actions and data changes, the same operations the admin endpoints expose."""

from __future__ import annotations

import time
from typing import Any

from tether.sandbox.config import SandboxConfig, SourceConfig
from tether.sandbox.counters import Counters
from tether.sandbox.data.catalog import Catalog, PatientSummary
from tether.sandbox.data.records import MaterializedRecord
from tether.sandbox.knobs import FaultDice, Knobs
from tether.sandbox.oauth.assertions import JwksCache
from tether.sandbox.oauth.id_tokens import IdTokenSigner
from tether.sandbox.oauth.server import SourceAuthorizationServer
from tether.sandbox.store import GrantStore


class UnknownSourceError(KeyError):
    """No sandbox source has that id."""


class Sandbox:
    """Everything one sandbox app serves, per source."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = GrantStore(config.state_path)
        self.catalog = Catalog(config)
        self._knobs = {
            s.id: Knobs(access_token_lifetime=config.access_token_lifetime) for s in config.sources
        }
        self._dice = {s.id: FaultDice() for s in config.sources}
        self._counters = {s.id: Counters() for s in config.sources}
        self.jwks = JwksCache()
        self.id_tokens = IdTokenSigner()
        self.servers = {
            s.id: SourceAuthorizationServer(
                source_id=s.id,
                config=config,
                store=self.store,
                knobs=lambda sid=s.id: self._knobs[sid],  # type: ignore[misc]
                jwks=self.jwks,
                id_tokens=self.id_tokens,
            )
            for s in config.sources
        }

    def source(self, source_id: str) -> SourceConfig:
        found = self.config.source(source_id)
        if found is None:
            raise UnknownSourceError(source_id)
        return found

    def knobs(self, source_id: str) -> Knobs:
        """The live, mutable knobs of ``source_id`` (changes apply to the next request)."""
        self.source(source_id)
        return self._knobs[source_id]

    def dice(self, source_id: str) -> FaultDice:
        return self._dice[source_id]

    def counters(self, source_id: str) -> Counters:
        self.source(source_id)
        return self._counters[source_id]

    def patients(self, source_id: str) -> list[PatientSummary]:
        self.source(source_id)
        return self.catalog.patients(source_id)

    def set_knobs(self, source_id: str, changes: dict[str, Any]) -> Knobs:
        knobs = self.knobs(source_id)
        knobs.update(changes)
        self._dice[source_id].reset()
        return knobs

    def reset(self, source_id: str) -> None:
        """Default knobs, zeroed counters and fault sequence (tokens and data stay)."""
        self.knobs(source_id).reset(access_token_lifetime=self.config.access_token_lifetime)
        self._dice[source_id].reset()
        self._counters[source_id].reset()

    def expire_tokens(self, source_id: str) -> int:
        """Every access token of the source is expired now; refresh still works."""
        self.source(source_id)
        return self.store.expire_all(source_id, now=time.time())

    def revoke_all(self, source_id: str) -> int:
        """Revoked at the source: every token dies; refresh answers ``invalid_grant``."""
        self.source(source_id)
        return self.store.revoke_all(source_id)

    def touch(self, source_id: str, patient_id: str, n: int) -> list[str]:
        """Bump ``meta.lastUpdated`` of ``n`` resources to now (for incremental sync)."""
        return self._materialized(source_id, patient_id).touch(n, time.time())

    def add(self, source_id: str, patient_id: str, resources: list[dict[str, Any]]) -> list[str]:
        """Add or replace resources in a patient's compartment, stamped now."""
        return self._materialized(source_id, patient_id).add(resources, time.time())

    def _materialized(self, source_id: str, patient_id: str) -> MaterializedRecord:
        self.source(source_id)
        if not self.catalog.has_patient(source_id, patient_id):
            raise KeyError(patient_id)
        record = self.catalog.record(source_id, patient_id)
        if not isinstance(record, MaterializedRecord):
            raise ValueError("the volume patient is generated and cannot be changed")
        return record

    def close(self) -> None:
        self.store.close()
