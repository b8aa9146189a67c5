"""Synthetic FHIR R4 data served by the sandbox (carebundle plus a few local builders)."""
