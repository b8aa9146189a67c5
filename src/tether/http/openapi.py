"""The OpenAPI document, complete and true: every status an operation can answer, with its
content type, and which credential each operation takes.

FastAPI documents what a route declares. What every route shares is added here, from the
route itself, so it cannot drift from the code:

- the credential: a route that depends on :func:`~tether.http.deps.get_tenant` takes the API
  key (security scheme ``apiKey``), on ``get_member`` a member token (``memberToken``), on
  ``get_principal`` either; each answers ``401`` (no, bad or revoked credential) and ``403``
  (the wrong kind, or a disabled member or tenant);
- ``404`` for a route with path parameters (the thing named does not exist, or is not yours);
- ``422`` for a route with parameters or a body, as ``application/problem+json`` with the
  ``errors`` list (FastAPI would say ``application/json``);
- ``429``, ``500`` and ``503`` everywhere (rate limits, the masked unexpected error, and the
  database unavailable: retry after Retry-After seconds).

What only some routes answer (``400``, ``409``, ``410``, ``502`` …) they declare with
:func:`problems`. Routes that answer HTML (the OAuth pages) declare their own content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from tether.http.deps import get_member, get_principal, get_tenant
from tether.http.rfc9457 import FHIR_JSON, PROBLEM_JSON, is_fhir

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
DESCRIPTIONS = {
    400: "Invalid request (a value the service cannot use)",
    401: "No credential, or a bad, expired or revoked one",
    403: "The wrong kind of credential, or a disabled member or tenant",
    404: "Not found (or not the caller's)",
    409: "The lifecycle does not allow it now",
    410: "Gone",
    422: "The request does not match the schema",
    429: "Too many requests: retry after Retry-After seconds",
    500: "Unexpected error (its detail names the request id in the logs)",
    503: "The database is unavailable (DATABASE_UNAVAILABLE): retry after Retry-After seconds",
    502: "A data source answered badly",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "requestId": {"type": "string"},
        "code": {"type": "string", "description": "a stable, machine-readable reason"},
        "errors": {
            "type": "array",
            "description": "for 422: each invalid input",
            "items": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "the tenant's API key (tk_…): the app's server",
    },
    "memberToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "a member token from POST /v1/members/{id}/tokens: the member's app",
    },
}
EVERYWHERE = (429, 500, 503)


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: these statuses, as problem documents."""
    return {code: _problem(code) for code in codes}


HTML_DESCRIPTIONS = {
    200: "A page for the member",
    302: "Redirect (to the data source, or back to the app's return URL)",
    400: "A page saying why the request cannot be used",
    401: "A page: the member or the tenant no longer exists or is disabled",
    403: "A page: the member or the tenant is disabled",
    409: "A page: the connection cannot be established now",
    410: "A page: the link was used or has expired",
    502: "A page: the data source is unavailable",
}


def html_pages(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a browser route: these statuses, as HTML pages (a 302 has none)."""
    found: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"description": HTML_DESCRIPTIONS.get(code, "A page")}
        if code != 302:
            entry["content"] = {"text/html": {"schema": {"type": "string"}}}
        found[code] = entry
    return found


def _problem(code: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(code, "Problem"),
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _security(route: APIRoute) -> list[dict[str, list[str]]] | None:
    calls = set(_calls(route.dependant))
    if get_tenant in calls:
        return [{"apiKey": []}]
    if get_member in calls:
        return [{"memberToken": []}]
    if get_principal in calls:
        return [{"apiKey": []}, {"memberToken": []}]
    return None


OUTCOME_REF = {"$ref": "#/components/schemas/OperationOutcome"}
OUTCOME_SCHEMA: dict[str, Any] = {
    "title": "OperationOutcome",
    "description": "a FHIR R4 OperationOutcome: the FHIR API's errors",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "id": {"type": "string"},
        "issue": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "details": {"type": "object"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
    "additionalProperties": True,
}


def fhir_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a FHIR API route: these statuses, as OperationOutcomes."""
    return {code: _outcome(code) for code in codes}


def _outcome(code: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(code, "OperationOutcome"),
        "content": {FHIR_JSON: {"schema": OUTCOME_REF}},
    }


def _complete_operation(route: APIRoute, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    if route.response_class is HTMLResponse:
        return  # a browser page: it declares its own
    error = _outcome if is_fhir(route.path) else _problem
    wanted: set[int] = set(EVERYWHERE)
    security = _security(route)
    if security is not None:
        op["security"] = security
        wanted |= {401, 403}
    if route.dependant.path_params:
        wanted.add(404)
    if "422" in responses:
        responses["422"] = error(422)
    for code in sorted(wanted):
        responses.setdefault(str(code), error(code))


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, completed (built once)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["OperationOutcome"] = OUTCOME_SCHEMA
    # FastAPI's own 422 shapes are not what tether answers.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = SECURITY_SCHEMES
    # Routers are included lazily (FastAPI ≥ 0.16x): walk their effective routes.
    for context in routing.iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not getattr(context, "include_in_schema", True):
            continue
        path = getattr(context, "path_format", route.path_format)
        for method in getattr(context, "methods", None) or route.methods or ():
            op = doc["paths"].get(path, {}).get(method.lower())
            if op is not None:
                _complete_operation(route, op)
    app.openapi_schema = doc
    return doc


def install(app: FastAPI) -> None:
    app.openapi = lambda: document(app)  # type: ignore[method-assign]
