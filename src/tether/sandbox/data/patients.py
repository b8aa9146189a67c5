"""Which synthetic patients each sandbox source serves, and their compartments.

Every patient is a carebundle person (same demographics at every source, the way one
member shows up at a clinic, an insurer and a lab) with a history of visits. A visit is
a carebundle bundle re-dated and re-identified, so a long history costs a string
substitution per resource instead of a carebundle draw: the ≥ 20,000-resource patient
builds in about a second. Everything is a pure function of ``(seed, source, patient)``
and cached per process.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from tether.sandbox.config import INSURANCE, LAB, SourceConfig
from tether.sandbox.data import builders
from tether.sandbox.data.carebundle_source import patient_resource, visit_resources
from tether.sandbox.data.records import Entry, iso

REFERENCE_DATE = date(2026, 1, 1)  # carebundle's visit date, re-dated per visit
NAMESPACE = uuid.UUID("3b1f6f2e-7a55-4c59-9d0c-5a0f2f1e8c11")
PROFILES = ("type2_diabetes", "hypertension", "healthy", "ckd_stage3", "anaemia")
SMALL_VISITS = 8
LARGE_VISITS = 470
TEMPLATES = 6
VISIT_TYPES = {"Encounter", "Observation", "DiagnosticReport", "MedicationRequest"}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LU = "@@LASTUPDATED@@"


@dataclass(frozen=True)
class PatientSpec:
    """One patient of one source; ``volume > 0`` marks the lazily generated one."""

    id: str
    person: int
    profile: str
    sex: str
    visits: int
    label: str
    volume: int = 0


def patient_specs(source: SourceConfig) -> list[PatientSpec]:
    """The patients ``source`` serves, in consent-page order."""
    short = source.id.removeprefix("sandbox-")
    specs = [
        PatientSpec(
            id=f"{short}-{n + 1}",
            person=n,
            profile=PROFILES[n % len(PROFILES)],
            sex=("F", "M")[n % 2] if PROFILES[n % len(PROFILES)] != "anaemia" else "F",
            visits=SMALL_VISITS * (3 if source.type == INSURANCE else 1),
            label=PROFILES[n % len(PROFILES)].replace("_", " "),
        )
        for n in range(source.patients)
    ]
    if source.large_patient:
        specs.append(
            PatientSpec(
                id=f"{short}-large",
                person=100,
                profile="ckd_stage3",
                sex="M",
                visits=LARGE_VISITS,
                label="long history",
            )
        )
    if source.volume_resources > 0:
        specs.append(
            PatientSpec(
                id=f"{short}-volume",
                person=101,
                profile="healthy",
                sex="F",
                visits=0,
                label=f"volume: {source.volume_resources:,} observations",
                volume=source.volume_resources,
            )
        )
    return specs


def demographics(seed: int, spec: PatientSpec) -> dict[str, Any]:
    """The Patient resource (id = the spec's id)."""
    return dict(patient_resource(seed=seed, index=spec.person, sex=spec.sex), id=spec.id)


def _epoch(day: date, hour: int = 10) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp()


def _stamp(resource: dict[str, Any], when: float) -> Entry:
    resource["meta"] = dict(resource.get("meta") or {}, lastUpdated=iso(when))
    return when, resource["id"], json.dumps(resource, separators=(",", ":")).encode()


class _Builder:
    """Accumulates one patient's entries; kept private to :func:`build_entries`."""

    def __init__(self, seed: int, source: SourceConfig, spec: PatientSpec) -> None:
        self.seed, self.source, self.spec = seed, source, spec
        self.entries: dict[str, list[Entry]] = {}
        interval = max(7, min(120, 365 * 15 // max(spec.visits, 1)))
        self.days = [
            REFERENCE_DATE - timedelta(days=interval * (spec.visits - 1 - v))
            for v in range(spec.visits)
        ]

    def rid(self, *parts: object) -> str:
        key = ":".join(str(p) for p in (self.seed, self.source.id, self.spec.id, *parts))
        return str(uuid.uuid5(NAMESPACE, key))

    def put(self, resource: dict[str, Any], when: float) -> None:
        self.entries.setdefault(resource["resourceType"], []).append(_stamp(resource, when))

    def put_text(self, rtype: str, rid: str, text: str, when: float) -> None:
        self.entries.setdefault(rtype, []).append((when, rid, text.replace(LU, iso(when)).encode()))


def _templates(seed: int, spec: PatientSpec, labs_only: bool) -> list[list[dict[str, Any]]]:
    count = min(TEMPLATES, max(spec.visits, 1))
    return [
        visit_resources(
            seed=seed,
            index=spec.person * 1000 + k,
            profile=spec.profile,
            sex=spec.sex,
            labs_only=labs_only,
        )
        for k in range(count)
    ]


def _own(resources: list[dict[str, Any]], patient_id: str) -> list[dict[str, Any]]:
    """Point a template's resources at our patient id instead of carebundle's."""
    old = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    text = json.dumps(resources).replace(f"Patient/{old}", f"Patient/{patient_id}")
    owned: list[dict[str, Any]] = json.loads(text)
    return owned


def _visits(b: _Builder, templates: list[list[dict[str, Any]]], types: set[str]) -> None:
    """Clone template visits across the patient's visit days, with fresh ids."""
    prepared = []
    for template in templates:
        items = []
        for r in template:
            if r["resourceType"] in types:
                r = dict(r, meta=dict(r.get("meta") or {}, lastUpdated=LU))
                items.append((r["resourceType"], r["id"], json.dumps(r, separators=(",", ":"))))
        prepared.append(items)
    for v, day in enumerate(b.days):
        items = prepared[v % len(prepared)]
        ids = {old: b.rid("visit", v, old) for _, old, _ in items}
        stamp, when = day.isoformat(), _epoch(day)

        def fresh(match: re.Match[str], ids: dict[str, str] = ids) -> str:
            return ids.get(match.group(), match.group())

        for rtype, old, text in items:
            cloned = UUID_RE.sub(fresh, text)
            b.put_text(rtype, ids[old], cloned.replace("2026-01-01", stamp), when)


def _encounter_ids(b: _Builder) -> list[str]:
    return [rid for _, rid, _ in sorted(b.entries.get("Encounter", []))]


def _clinical_extras(b: _Builder) -> None:
    pid = b.spec.id
    for v, (day, enc) in enumerate(zip(b.days, _encounter_ids(b), strict=False)):
        on, when = f"{day.isoformat()}T09:30:00Z", _epoch(day, 11)
        b.put(builders.visit_note(rid=b.rid("note", v), patient=pid, encounter=enc, on=on), when)
        if v % 4 == 0:
            b.put(
                builders.procedure(
                    rid=b.rid("proc", v), patient=pid, encounter=enc, on=on, which=v
                ),
                when,
            )
        if v % 5 == 0:
            b.put(builders.immunization(rid=b.rid("imm", v), patient=pid, on=on, which=v), when)
    start = b.days[0].isoformat() if b.days else REFERENCE_DATE.isoformat()
    b.put(
        builders.coverage(
            rid=b.rid("coverage"), patient=pid, payer="Sandbox Insurer", kind="HIP", start=start
        ),
        _epoch(b.days[0] if b.days else REFERENCE_DATE),
    )


def _insurance(b: _Builder, template: list[dict[str, Any]]) -> None:
    pid = b.spec.id
    first = _epoch(b.days[0])
    medical, pharmacy = b.rid("coverage", "medical"), b.rid("coverage", "pharmacy")
    start = b.days[0].isoformat()
    b.put(
        builders.coverage(
            rid=medical, patient=pid, payer="Sandbox Insurer", kind="HIP", start=start
        ),
        first,
    )
    b.put(
        builders.coverage(
            rid=pharmacy, patient=pid, payer="Sandbox Insurer Rx", kind="DRUGPOL", start=start
        ),
        first,
    )
    diagnoses = [r["code"] for r in template if r["resourceType"] == "Condition"]
    drugs = [r for r in template if r["resourceType"] == "MedicationRequest"]
    for v, day in enumerate(b.days):
        on, when = f"{day.isoformat()}T12:00:00Z", _epoch(day, 12)
        b.put(
            builders.explanation_of_benefit(
                rid=b.rid("eob", v),
                patient=pid,
                coverage_id=medical,
                on=on,
                diagnoses=diagnoses or [{"text": "Preventive visit"}],
                amount=95 + (v * 37) % 160,
                pharmacy=False,
            ),
            when,
        )
        for d, _drug in enumerate(drugs):
            b.put(
                builders.explanation_of_benefit(
                    rid=b.rid("eob-rx", v, d),
                    patient=pid,
                    coverage_id=pharmacy,
                    on=on,
                    diagnoses=[],
                    amount=8 + (v * 13 + d) % 40,
                    pharmacy=True,
                ),
                when,
            )


@lru_cache(maxsize=64)
def build_entries(
    seed: int, source: SourceConfig, spec: PatientSpec
) -> dict[str, tuple[Entry, ...]]:
    """Every resource of a materialized patient, keyed by type (immutable, cached)."""
    b = _Builder(seed, source, spec)
    labs_only = source.type == LAB
    templates = [_own(t, spec.id) for t in _templates(seed, spec, labs_only)]
    b.put(demographics(seed, spec), _epoch(b.days[0], 8))
    if source.type == INSURANCE:
        _insurance(b, templates[0])
    else:
        types = {"Encounter", "Observation", "DiagnosticReport"} if labs_only else VISIT_TYPES
        _visits(b, templates, types)
        for r in templates[0] if not labs_only else []:
            if r["resourceType"] in ("Condition", "AllergyIntolerance"):
                b.put(r, _epoch(b.days[0], 9))
        if not labs_only:
            _clinical_extras(b)
        seen: set[str] = set()
        for t in templates:
            for r in t:
                if r["resourceType"] == "Practitioner" and r["id"] not in seen:
                    seen.add(r["id"])
                    b.put(dict(r), _epoch(b.days[0], 7))
    return {t: tuple(e) for t, e in b.entries.items()}
