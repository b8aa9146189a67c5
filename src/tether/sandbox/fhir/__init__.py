"""The sandbox's FHIR R4 REST API (read and search over the patient compartment)."""
