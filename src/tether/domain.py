"""Domain vocabulary: the enumerations of DESIGN.md, shared by every layer."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    OAUTH = "OAUTH"
    BASIC = "BASIC"
    IDENTITY = "IDENTITY"


class SourceType(StrEnum):
    CLINICAL = "CLINICAL"
    INSURANCE = "INSURANCE"
    LAB = "LAB"
    PHARMACY = "PHARMACY"
    PRACTITIONER = "PRACTITIONER"


class Status(StrEnum):
    """The authorization's state."""

    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    EXPIRED = "EXPIRED"
    ERROR = "ERROR"
    DELETED = "DELETED"
    ACCESS_ENDED = "ACCESS_ENDED"


class SyncStatus(StrEnum):
    """The data pipeline's state."""

    PENDING = "PENDING"
    RETRIEVING = "RETRIEVING"
    RETRIEVED = "RETRIEVED"
    ERROR = "ERROR"
    DELETING = "DELETING"
    DATA_DELETED = "DATA_DELETED"


# The patient-compartment types a sync searches when the source's directory entry names none.
RESOURCE_TYPES: tuple[str, ...] = (
    "Patient",
    "AllergyIntolerance",
    "Condition",
    "Coverage",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "ExplanationOfBenefit",
    "Immunization",
    "MedicationRequest",
    "Observation",
    "Procedure",
)

# Resources a record refers to outside the patient compartment, fetched after a sync's
# searches unless the source's directory entry says otherwise (tether.sync.references).
REFERENCED_TYPES: tuple[str, ...] = (
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Medication",
)
# Every type tether stores and serves (the FHIR API, exports): what is searched, then what it
# refers to.
STORED_TYPES: tuple[str, ...] = RESOURCE_TYPES + REFERENCED_TYPES
# The media types a source may want in Accept (FHIR R4 §3.1.0.1.6; the others are older).
FHIR_MEDIA_TYPES = ("application/fhir+json", "application/json+fhir", "application/json")

# A data source's request budget unless its directory entry says otherwise (tether.sync.budgets).
DEFAULT_MAX_CONCURRENT_REQUESTS = 20
DEFAULT_MAX_REQUESTS_PER_MINUTE = 1200
