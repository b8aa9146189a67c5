"""FHIR responses: ``application/fhir+json`` bodies and OperationOutcome errors."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

FHIR_JSON = "application/fhir+json"


def fhir_response(body: bytes | dict[str, Any], status: int = 200) -> Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(content, status, media_type=FHIR_JSON)


def operation_outcome(
    status: int, code: str, text: str, *, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return Response(json.dumps(body), status, headers=headers, media_type=FHIR_JSON)


def unauthorized(reason: str) -> Response:
    """RFC 6750 §3: 401 with a ``WWW-Authenticate: Bearer`` challenge."""
    challenge = 'Bearer realm="sandbox"'
    if reason != "missing":
        challenge += f', error="invalid_token", error_description="{reason}"'
    return operation_outcome(
        401, "login", f"access token {reason}", headers={"WWW-Authenticate": challenge}
    )
