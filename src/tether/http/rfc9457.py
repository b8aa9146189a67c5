"""RFC 9457 problem details: the one place where errors become HTTP responses.

Every :class:`~tether.errors.ProblemError` becomes ``application/problem+json`` with ``type``
(``urn:tether:problem:<slug>``), ``title``, ``status``, ``detail``, ``instance`` and ``requestId``;
request validation errors are 422 with an ``errors`` list; anything unexpected is a 500 whose
detail points at the request id in the logs. Under the FHIR API (``/v1/fhir``,
``/v1/members/{id}/fhir``) the same facts are a FHIR OperationOutcome (``application/fhir+json``).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from tether.errors import ISSUE_TYPES, PROBLEM_BASE, ProblemError, ServiceUnavailable
from tether.logging import get_logger
from tether.store.db import database_unavailable

PROBLEM_JSON = "application/problem+json"
log = get_logger("tether.api")

_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated"}


FHIR_JSON = "application/fhir+json"
# The FHIR API's paths (tether.api.routes.fhir): there an error is a FHIR OperationOutcome,
# as FHIR clients expect, carrying the same facts as the problem document.
_FHIR_PATH = re.compile(r"^/v1/(members/[^/]+/)?fhir(/|$)")


def is_fhir(path: str) -> bool:
    """Whether ``path`` is the FHIR API's (errors are OperationOutcomes there)."""
    return _FHIR_PATH.match(path) is not None


def operation_outcome(doc: dict[str, Any]) -> dict[str, Any]:
    """A problem document as a FHIR R4 OperationOutcome (one issue per invalid input)."""
    slug = str(doc["type"]).removeprefix(PROBLEM_BASE)
    code = ISSUE_TYPES.get(slug, "exception" if doc["status"] >= 500 else "processing")
    details = {"text": doc["title"]}
    if doc.get("code"):
        details["coding"] = [{"system": "urn:tether:problem-code", "code": doc["code"]}]
    issues = [{"severity": "error", "code": code, "details": details, "diagnostics": doc["detail"]}]
    for error in doc.get("errors") or []:
        issues.append(
            {
                "severity": "error",
                "code": code,
                "diagnostics": error["message"],
                "expression": [error["location"]],
            }
        )
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": issues}
    if doc.get("requestId"):
        outcome["id"] = doc["requestId"]
    return outcome


def problem_response(
    request: Request, doc: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    doc.setdefault("instance", request.url.path)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        doc["requestId"] = request_id
    if is_fhir(request.url.path):
        return JSONResponse(
            operation_outcome(doc), status_code=doc["status"], media_type=FHIR_JSON, headers=headers
        )
    return JSONResponse(doc, status_code=doc["status"], media_type=PROBLEM_JSON, headers=headers)


def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    headers = {"WWW-Authenticate": 'Bearer realm="tether"'} if exc.status == 401 else None
    retry_after = exc.extensions.get("retryAfter")
    if retry_after is not None:
        headers = {**(headers or {}), "Retry-After": str(retry_after)}
    return problem_response(request, exc.to_problem(), headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors) or "invalid input"
    return problem_response(
        request,
        {
            "type": PROBLEM_BASE + "validation-error",
            "title": "Invalid request",
            "status": 422,
            "detail": detail,
            "errors": errors,
        },
    )


def _allowed_methods(request: Request) -> str | None:
    """For a 405: every method some route answers at this path (Starlette's own ``Allow``
    names only the first route that matched the path, not the others at the same path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match == Match.PARTIAL:
            methods |= set(getattr(route, "methods", None) or ())
    for context in routing.iter_route_contexts(request.app.router.routes):
        original = context.original_route
        found = getattr(original, "methods", None)
        path_regex = getattr(context, "path_regex", None) or getattr(original, "path_regex", None)
        if found and path_regex is not None and path_regex.match(request.url.path):
            methods |= set(found)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or None


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = allowed
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    return problem_response(
        request,
        {
            "type": PROBLEM_BASE + slug,
            "title": slug.replace("-", " ").capitalize(),
            "status": exc.status_code,
            "detail": str(exc.detail),
        },
        headers or None,
    )


DATABASE_RETRY_AFTER = 5  # seconds: a restarting database is usually back by then


def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database error, answered here rather than by Starlette's last-resort handler (which
    re-raises after answering, and the connection is cut)."""
    return _unexpected(request, exc)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):
        # Not a bug: the database is gone or restarting. A 503 the client can retry, and a
        # log line without a traceback (the cause class says which failure it was).
        log.warning("database unavailable", path=request.url.path, error=type(exc).__name__)
        unavailable = ServiceUnavailable(
            "the database is unavailable; try again shortly",
            code="DATABASE_UNAVAILABLE",
            retryAfter=DATABASE_RETRY_AFTER,
        )
        return _problem_error(request, unavailable)
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return problem_response(
        request,
        {
            "type": PROBLEM_BASE + "internal",
            "title": "Internal error",
            "status": 500,
            "detail": "an unexpected error occurred; the request id identifies it in the logs",
        },
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
