"""carebundle output as server-side resources (ids and ``Type/id`` references).

carebundle emits transaction Bundles with ``urn:uuid:`` references; its
``to_ndjson`` converts them to the shape a FHIR server holds (ids minted from
``fullUrl``, references rewritten), which is what the sandbox serves.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from carebundle import generate_bundle, generate_patient, to_ndjson

SEXES = ("F", "M")


@lru_cache(maxsize=256)
def _visit_json(seed: int, index: int, profile: str, sex: str, labs_only: bool) -> str:
    bundle = generate_bundle(
        profile=profile, seed=seed, sex=sex, index=index, include_vitals=not labs_only
    )
    streams = to_ndjson([bundle])
    return json.dumps(
        [json.loads(line) for lines in streams.values() for line in lines.splitlines() if line]
    )


def visit_resources(
    *, seed: int, index: int, profile: str, sex: str, labs_only: bool = False
) -> list[dict[str, Any]]:
    """One carebundle visit (Patient, Encounter, Conditions, labs, vitals, meds ...)."""
    resources: list[dict[str, Any]] = json.loads(_visit_json(seed, index, profile, sex, labs_only))
    return resources


@lru_cache(maxsize=256)
def _patient_json(seed: int, index: int, sex: str) -> str:
    patient = generate_patient(seed=seed, index=index, sex=sex)
    return json.dumps(patient.model_dump(mode="json", exclude_none=True, by_alias=True))


def patient_resource(*, seed: int, index: int, sex: str) -> dict[str, Any]:
    """Demographics only; the same person as ``visit_resources`` at that index."""
    resource: dict[str, Any] = json.loads(_patient_json(seed, index, sex))
    return resource
