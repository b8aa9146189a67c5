"""Sync errors as CodeableConcepts: ``{text, coding: [{system, code, display}]}``.

Every code tether emits is listed here with its display text; docs/api.md documents them.
"""

from __future__ import annotations

SYSTEM = "urn:tether:sync-error"

CODES: dict[str, str] = {
    "PATIENT_RETRIEVAL_ERROR": "The patient's record could not be retrieved from the source.",
    "PERSON_MATCHING_ERROR": "The source could not match the signed-in person to a patient.",
    "AUTHORIZATION_EXPIRED": "The authorization expired; reconnect to resume retrieval.",
    "SOURCE_UNAVAILABLE": "The source could not be reached or failed; tether will retry.",
    "RATE_LIMITED": "The source asked tether to slow down; tether will retry later.",
    "INVALID_RESPONSE": "The source answered something that is not valid FHIR.",
    "PARTIAL_RETRIEVAL": "Some resource types could not be retrieved; the rest were.",
    "ACCESS_FORBIDDEN": "The source refused access to some or all of the data.",
    "PAGING_LIMIT": "The source's result pages did not end; retrieval stopped at the limit.",
}


def sync_error(code: str, text: str | None = None) -> dict[str, object]:
    display = CODES[code]
    return {
        "text": text or display,
        "coding": [{"system": SYSTEM, "code": code, "display": display}],
    }
