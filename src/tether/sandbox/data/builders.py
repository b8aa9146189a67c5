"""FHIR R4 resources carebundle does not build: Immunization, Procedure,
DocumentReference, Coverage and ExplanationOfBenefit.

Shapes follow US Core 6.1 (Immunization, Procedure, DocumentReference) and the CARIN
Blue Button IG (Coverage, ExplanationOfBenefit), minimally. Every resource is tagged
``HTEST`` like carebundle's, so nobody mistakes it for real data.
"""

from __future__ import annotations

import base64
from typing import Any

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
CARIN_BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
HTEST = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "code": "HTEST",
    "display": "test health data",
}
CVX = "http://hl7.org/fhir/sid/cvx"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"

VACCINES = (
    ("140", "Influenza, seasonal, injectable, preservative free"),
    ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose"),
    ("115", "Tdap"),
)
PROCEDURES = (
    ("73761001", "Colonoscopy"),
    ("252416005", "Histopathology test"),
    ("268556000", "Urine screening for glucose"),
    ("410006001", "Digital examination of rectum"),
)


def _meta(profile: str) -> dict[str, Any]:
    return {"profile": [profile], "security": [HTEST]}


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def immunization(*, rid: str, patient: str, on: str, which: int) -> dict[str, Any]:
    code, display = VACCINES[which % len(VACCINES)]
    return {
        "resourceType": "Immunization",
        "id": rid,
        "meta": _meta(US_CORE + "us-core-immunization"),
        "status": "completed",
        "vaccineCode": _cc(CVX, code, display),
        "patient": {"reference": f"Patient/{patient}"},
        "occurrenceDateTime": on,
        "primarySource": True,
    }


def procedure(*, rid: str, patient: str, encounter: str, on: str, which: int) -> dict[str, Any]:
    code, display = PROCEDURES[which % len(PROCEDURES)]
    return {
        "resourceType": "Procedure",
        "id": rid,
        "meta": _meta(US_CORE + "us-core-procedure"),
        "status": "completed",
        "code": _cc(SNOMED, code, display),
        "subject": {"reference": f"Patient/{patient}"},
        "encounter": {"reference": f"Encounter/{encounter}"},
        "performedDateTime": on,
    }


def visit_note(*, rid: str, patient: str, encounter: str, on: str) -> dict[str, Any]:
    note = f"Synthetic progress note for the visit of {on[:10]}. Not a real person."
    return {
        "resourceType": "DocumentReference",
        "id": rid,
        "meta": _meta(US_CORE + "us-core-documentreference"),
        "status": "current",
        "type": _cc(LOINC, "11506-3", "Progress note"),
        "category": [
            _cc(
                "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                "clinical-note",
                "Clinical Note",
            )
        ],
        "subject": {"reference": f"Patient/{patient}"},
        "date": on,
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(note.encode()).decode(),
                }
            }
        ],
        "context": {"encounter": [{"reference": f"Encounter/{encounter}"}]},
    }


def coverage(*, rid: str, patient: str, payer: str, kind: str, start: str) -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": rid,
        "meta": _meta(CARIN_BB + "C4BB-Coverage"),
        "status": "active",
        "type": _cc(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            kind,
            "health insurance plan policy" if kind == "HIP" else "drug policy",
        ),
        "subscriberId": rid[:8].upper(),
        "beneficiary": {"reference": f"Patient/{patient}"},
        "relationship": _cc(
            "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", "Self"
        ),
        "period": {"start": start},
        "payor": [{"display": payer}],
    }


def explanation_of_benefit(
    *,
    rid: str,
    patient: str,
    coverage_id: str,
    on: str,
    diagnoses: list[dict[str, Any]],
    amount: float,
    pharmacy: bool,
) -> dict[str, Any]:
    claim_type = "pharmacy" if pharmacy else "professional"
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": rid,
        "meta": _meta(
            CARIN_BB
            + (
                "C4BB-ExplanationOfBenefit-Pharmacy"
                if pharmacy
                else "C4BB-ExplanationOfBenefit-Professional-NonClinician"
            )
        ),
        "status": "active",
        "type": _cc(
            "http://terminology.hl7.org/CodeSystem/claim-type", claim_type, claim_type.capitalize()
        ),
        "use": "claim",
        "patient": {"reference": f"Patient/{patient}"},
        "billablePeriod": {"start": on[:10], "end": on[:10]},
        "created": on,
        "insurer": {"display": "Sandbox Insurer"},
        "provider": {"display": "Sandbox Clinic"},
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{coverage_id}"}}],
        "diagnosis": [
            {"sequence": i + 1, "diagnosisCodeableConcept": d} for i, d in enumerate(diagnoses)
        ],
        "item": [
            {
                "sequence": 1,
                "servicedDate": on[:10],
                "productOrService": _cc(
                    "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "unknown",
                    "Office visit" if not pharmacy else "Drug",
                ),
            }
        ],
        "total": [
            {
                "category": _cc(
                    "http://terminology.hl7.org/CodeSystem/adjudication",
                    "submitted",
                    "Submitted Amount",
                ),
                "amount": {"value": round(amount, 2), "currency": "USD"},
            }
        ],
    }
