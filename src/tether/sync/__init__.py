"""Data sync: pulling a connection's patient compartment from its FHIR API, page by page."""
