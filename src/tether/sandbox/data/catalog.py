"""The live data of every source: one :class:`Record` per patient, built on first use.

Generated entries are cached per process (see :func:`patients.build_entries`); each
``Catalog`` wraps them in its own mutable record, so ``touch``/``add`` in one sandbox
never leak into another.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tether.sandbox.config import SandboxConfig
from tether.sandbox.data.patients import (
    PatientSpec,
    build_entries,
    demographics,
    patient_specs,
)
from tether.sandbox.data.records import MaterializedRecord, Record, VolumeRecord

VOLUME_BASE = 1_704_067_200.0  # 2024-01-01T00:00:00Z: volume Observation i is base + i s


@dataclass(frozen=True)
class PatientSummary:
    """What the consent page and the docs show about a patient."""

    id: str
    name: str
    birth_date: str
    label: str


class Catalog:
    """Patients and their records for every configured source."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._specs = {s.id: {p.id: p for p in patient_specs(s)} for s in config.sources}
        self._records: dict[tuple[str, str], Record] = {}
        self._lock = threading.Lock()

    def patients(self, source_id: str) -> list[PatientSummary]:
        out = []
        for spec in self._specs[source_id].values():
            patient = demographics(self._config.seed, spec)
            name = patient["name"][0]
            out.append(
                PatientSummary(
                    id=spec.id,
                    name=" ".join([*name.get("given", []), name.get("family", "")]),
                    birth_date=patient.get("birthDate", ""),
                    label=spec.label,
                )
            )
        return out

    def has_patient(self, source_id: str, patient_id: str) -> bool:
        return patient_id in self._specs.get(source_id, {})

    def record(self, source_id: str, patient_id: str) -> Record:
        key = (source_id, patient_id)
        with self._lock:
            found = self._records.get(key)
            if found is None:
                found = self._build(source_id, self._specs[source_id][patient_id])
                self._records[key] = found
            return found

    def _build(self, source_id: str, spec: PatientSpec) -> Record:
        seed = self._config.seed
        if spec.volume:
            return VolumeRecord(spec.id, demographics(seed, spec), spec.volume, VOLUME_BASE)
        source = self._config.source(source_id)
        assert source is not None
        entries = build_entries(seed, source, spec)
        return MaterializedRecord(spec.id, {t: list(e) for t, e in entries.items()})
