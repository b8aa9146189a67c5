"""GraphQL errors as FHIR OperationOutcomes: the one place where an error becomes ``errors[]``.

Every error on ``/graphql`` — a problem a service raised, a syntax or validation error, an
unreadable request — is answered with HTTP 200 and an entry whose ``extensions`` carry

- ``code``: tether's error code (``UNKNOWN_CONNECTION``, ``GRAPHQL_VALIDATION_FAILED`` …),
- ``status`` and ``type``: the HTTP status and RFC 9457 problem type REST would answer,
- ``resource``: a FHIR R4 OperationOutcome with one ``issue`` (``severity`` ``error``, an
  IssueType ``code``, ``details.text``),

which is the shape the health SDK's client turns into an OperationOutcome error
(docs/sdk-compat.md). Unexpected exceptions are logged and answered without their message.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from tether.errors import ISSUE_TYPES, PROBLEM_BASE, ProblemError
from tether.logging import get_logger
from tether.store.db import database_unavailable

log = get_logger("tether.graphql")

ERROR_CODE_SYSTEM = "urn:tether:error"

_DEPTH_MARKER = "exceeds maximum operation depth"
_LIMIT_MARKERS = (_DEPTH_MARKER, "aliases found. Allowed", "Document contains more than")


class NotSupported(ProblemError):
    """An operation of the SDK's interface that tether does not offer (yet) for this tenant."""

    status = 501
    slug = "not-supported"
    title = "Not supported"


def operation_outcome(
    text: str, *, issue_code: str, code: str | None = None, severity: str = "error"
) -> dict[str, Any]:
    """A FHIR OperationOutcome with one issue; ``code`` (tether's) goes in ``details.coding``."""
    details: dict[str, Any] = {"text": text}
    if code:
        details["coding"] = [{"system": ERROR_CODE_SYSTEM, "code": code}]
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": issue_code, "details": details}],
    }


def _extensions(
    slug: str, status: int, code: str, text: str, issue_code: str | None = None
) -> dict[str, Any]:
    return {
        "code": code,
        "status": status,
        "type": PROBLEM_BASE + slug,
        "resource": operation_outcome(
            text, issue_code=issue_code or ISSUE_TYPES.get(slug, "processing"), code=code
        ),
    }


def problem_entry(exc: ProblemError) -> dict[str, Any]:
    """``errors[]`` entry (without locations/path) for a problem a service raised."""
    code = exc.code or exc.slug.replace("-", "_").upper()
    return {
        "message": exc.detail,
        "extensions": _extensions(exc.slug, exc.status, code, exc.detail),
    }


def request_error(
    message: str,
    *,
    code: str,
    slug: str = "invalid-request",
    status: int = 400,
    issue_code: str | None = None,
) -> dict[str, Any]:
    """``errors[]`` entry for an error that no service raised (bad body, syntax, validation)."""
    return {"message": message, "extensions": _extensions(slug, status, code, message, issue_code)}


def format_error(error: GraphQLError) -> dict[str, Any]:
    """One ``errors[]`` entry, with the OperationOutcome ``extensions`` the SDK needs."""
    entry: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if isinstance(original, ProblemError):
        shaped = problem_entry(original)
    elif original is not None and database_unavailable(original):
        log.warning("database unavailable", path=list(error.path or ()))
        shaped = request_error(
            "the database is unavailable; try again shortly",
            code="DATABASE_UNAVAILABLE",
            slug="unavailable",
            status=503,
        )
    elif original is not None and error.path is not None and not isinstance(original, GraphQLError):
        # A resolver crashed: log it, tell the client only that it happened.
        log.error("graphql resolver failed", path=list(error.path), exc_info=original)
        shaped = request_error(
            "an unexpected error occurred; the request id identifies it in the logs",
            code="INTERNAL_SERVER_ERROR",
            slug="internal",
            status=500,
        )
    elif any(marker in error.message for marker in _LIMIT_MARKERS):
        code = "QUERY_TOO_DEEP" if _DEPTH_MARKER in error.message else "QUERY_TOO_COMPLEX"
        shaped = request_error(error.message, code=code, slug="too-costly", status=400)
    elif isinstance(error, GraphQLSyntaxError):
        shaped = request_error(error.message, code="GRAPHQL_PARSE_FAILED", issue_code="structure")
    else:
        # Validation and variable-coercion errors: the document does not fit the schema.
        shaped = request_error(
            error.message, code="GRAPHQL_VALIDATION_FAILED", slug="validation-error", status=422
        )
    entry["message"] = shaped["message"]
    entry["extensions"] = {**(entry.get("extensions") or {}), **shaped["extensions"]}
    return entry
