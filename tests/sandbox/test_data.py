"""Synthetic data: determinism, the large and volume patients, incremental sync."""

from __future__ import annotations

import time

from tests.sandbox.conftest import CLINIC, Live, bearer, connect
from tether.sandbox.config import SandboxConfig, default_sources
from tether.sandbox.data.catalog import Catalog

INSURER = "sandbox-insurer"


def test_generation_is_deterministic_by_seed() -> None:
    one, two = Catalog(SandboxConfig(seed=3)), Catalog(SandboxConfig(seed=3))
    a = one.record(CLINIC, "clinic-1").page("Observation", _all(), 0, 5)
    b = two.record(CLINIC, "clinic-1").page("Observation", _all(), 0, 5)
    assert a == b
    other = Catalog(SandboxConfig(seed=4)).record(CLINIC, "clinic-1")
    assert other.page("Observation", _all(), 0, 5) != a


def _all():  # type: ignore[no-untyped-def]
    from tether.sandbox.data.records import ALL

    return ALL


def test_large_patient_has_20k_resources_quickly() -> None:
    started = time.monotonic()
    record = Catalog(SandboxConfig(seed=11)).record(CLINIC, "clinic-large")
    assert record.total() >= 20_000
    assert time.monotonic() - started < 10


def test_every_source_serves_its_types(live: Live) -> None:
    clinic_types = set(live.sandbox.catalog.record(CLINIC, "clinic-1").types())
    assert {
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "Immunization",
        "Procedure",
        "Encounter",
        "DiagnosticReport",
        "DocumentReference",
        "Coverage",
    } <= clinic_types
    insurer = set(live.sandbox.catalog.record(INSURER, "insurer-1").types())
    assert {"Coverage", "ExplanationOfBenefit"} <= insurer
    assert [s.id for s in default_sources()] == [
        CLINIC,
        INSURER,
        "sandbox-lab",
        "sandbox-pharmacy",
        "sandbox-specialty",  # requires private_key_jwt
        "sandbox-legacy",  # SMART v1: endpoints only in metadata
        "sandbox-regional",  # bends the standard: tether meets it with a profile
    ]


def test_volume_patient_pages_lazily(live: Live) -> None:
    token = connect(live, patient="clinic-volume")
    page = live.http.get(f"{live.fhir()}/Observation?_count=1000", headers=bearer(token)).json()
    assert page["total"] == 1_000_000
    assert len(page["entry"]) == 1000
    nxt = next(x["url"] for x in page["link"] if x["relation"] == "next")
    second = live.http.get(nxt, headers=bearer(token)).json()
    assert second["entry"][0]["resource"]["id"] == "clinic-volume-obs-1000"
    since = second["entry"][0]["resource"]["meta"]["lastUpdated"]
    later = live.http.get(
        f"{live.fhir()}/Observation", headers=bearer(token), params={"_lastUpdated": f"gt{since}"}
    ).json()
    assert later["total"] == 1_000_000 - 1001


def test_volume_observations_carry_their_instant_across_days() -> None:
    """Observation i is stamped base + i seconds: the whole-second fast path (a date per day,
    the time of day from tables) writes what ``iso`` writes, at midnight and across days."""
    import json

    from tether.sandbox.data.records import VolumeRecord, iso

    for base in (1_704_067_200.0, 1_704_067_200.25, 86_399.0):
        record = VolumeRecord("p", {"resourceType": "Patient", "id": "p"}, 400_000, base)
        for i in (0, 1, 59, 3_599, 86_399, 86_400, 86_401, 172_800, 399_999):
            rid, body = record.page("Observation", _all(), i, 1)[0]
            resource = json.loads(body)
            assert rid == resource["id"] == f"p-obs-{i}"
            assert resource["meta"]["lastUpdated"] == iso(base + i)
            assert resource["effectiveDateTime"] == iso(base + i)
            assert resource["subject"] == {"reference": "Patient/p"}
            assert resource["valueQuantity"]["value"] == 55 + (i * 7919) % 50


def test_touch_and_add_feed_incremental_sync(live: Live) -> None:
    token = connect(live, patient="clinic-2")
    cut = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    query = {"_lastUpdated": f"gt{cut}"}
    empty = live.http.get(f"{live.fhir()}/Observation", params=query, headers=bearer(token))
    assert empty.json()["total"] == 0
    touched = live.sandbox.touch(CLINIC, "clinic-2", 3)
    live.sandbox.add(
        CLINIC,
        "clinic-2",
        [
            {
                "resourceType": "Observation",
                "id": "added-1",
                "status": "final",
                "code": {"text": "Note"},
                "subject": {"reference": "Patient/clinic-2"},
            }
        ],
    )
    changed = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for rtype in {t.split("/")[0] for t in touched} | {"Observation"}
        for e in live.http.get(
            f"{live.fhir()}/{rtype}", params=query, headers=bearer(token)
        ).json()["entry"]
    }
    assert changed == {*touched, "Observation/added-1"}


def test_basic_source_accepts_portal_credentials(live: Live) -> None:
    """The BASIC source reads with HTTP Basic: username a patient id, the sandbox password."""
    fhir = live.fhir("sandbox-pharmacy")
    ok = live.http.get(f"{fhir}/Patient", auth=("pharmacy-1", "sandbox-password"))
    assert ok.status_code == 200
    assert [e["resource"]["id"] for e in ok.json()["entry"]] == ["pharmacy-1"]
    wrong = live.http.get(f"{fhir}/Patient", auth=("pharmacy-1", "nope"))
    assert wrong.status_code == 401
    other_source = live.http.get(f"{live.fhir()}/Patient", auth=("clinic-1", "sandbox-password"))
    assert other_source.status_code == 401  # OAuth-only sources take no passwords
