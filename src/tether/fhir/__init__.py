"""FHIR R4 as a client: reading a search page by page (protocol glue, no database)."""
