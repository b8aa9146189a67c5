"""The SDK's exception tree. Every error the SDK raises on purpose is a ``TetherError``.

    TetherError                 base: carries ``problem`` (the RFC 9457 document), ``status``
    │                           and ``request_id``; raised as is for an unexpected answer
    ├── ValidationError         400, 422; or the SDK's own check before any request
    │                           (``status`` is None then): a malformed connection id, a filter
    │                           value that is not one of the enum's
    ├── AuthenticationError     401 (missing, expired, revoked or forged token),
    │                           403 (a credential of the wrong kind)
    ├── NotFoundError           404: no such connection, data source or member (or not yours)
    ├── ConflictError           409: the lifecycle does not allow it now, the source is retired
    │                           (``code`` ACCESS_ENDED), data being deleted; 410: a used or
    │                           expired launch link
    ├── RateLimitError          429, after the retries; ``retry_after`` in seconds if given
    ├── ServerError             5xx, after the retries
    ├── NetworkError            the server could not be reached or the connection broke
    │                           (connect, read or write failures and timeouts), after the
    │                           retries; the httpx error is the ``__cause__``
    └── TimeoutError            ``wait_until`` gave up; ``last`` is the final state it saw

``TimeoutError`` shadows the builtin inside this package on purpose: ``except
tether.client.TimeoutError`` reads as what it is, and it is a ``TetherError`` like the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tether.client._models import MemberConnection

PROBLEM_BASE = "urn:tether:problem:"


class TetherError(Exception):
    """Base of every SDK error; ``problem`` is the server's problem document (or the SDK's)."""

    def __init__(
        self,
        problem: dict[str, Any],
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.problem = problem
        self.status = status
        self.request_id = request_id or _str_or_none(problem.get("requestId"))
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        """The human-readable explanation (the problem's ``detail``, else its ``title``)."""
        return str(self.problem.get("detail") or self.problem.get("title") or "error")

    @property
    def code(self) -> str | None:
        """tether's machine-readable code, e.g. ``UNKNOWN_CONNECTION`` or ``ACCESS_ENDED``."""
        return _str_or_none(self.problem.get("code"))

    @property
    def type(self) -> str | None:
        """The problem type URI, e.g. ``urn:tether:problem:not-found``."""
        return _str_or_none(self.problem.get("type"))

    def __str__(self) -> str:
        prefix = f"HTTP {self.status}: " if self.status is not None else ""
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{prefix}{self.detail}{suffix}"


class ValidationError(TetherError):
    """The input was refused: by the server (400, 422; ``errors`` lists the fields) or by
    the SDK before any request (``status`` is None)."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        found = self.problem.get("errors")
        return list(found) if isinstance(found, list) else []


class AuthenticationError(TetherError):
    """401: the token is missing, malformed, expired, revoked or forged; 403: it is the wrong
    kind of credential for the call (a member token where an API key is needed, or back)."""


class NotFoundError(TetherError):
    """404: no such resource, or one that is not the caller's (tether does not tell which)."""


class ConflictError(TetherError):
    """409: the connection's lifecycle does not allow the call now, or the source is retired;
    410: a launch link that was used or expired."""


class RateLimitError(TetherError):
    """429, when the retries (if any) did not get through; ``retry_after`` is the server's
    hint in seconds."""

    def __init__(
        self,
        problem: dict[str, Any],
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(problem, status=status, request_id=request_id)
        self.retry_after = retry_after


class ServerError(TetherError):
    """5xx: the server failed; retried first on idempotent calls when it was 502, 503 or 504."""


class NetworkError(TetherError):
    """The request did not complete: connection refused or reset, DNS, TLS, or a timeout.

    The httpx exception is chained as ``__cause__``. Idempotent calls are retried first."""


class TimeoutError(TetherError):
    """``wait_until`` ran out of time before the predicate held; ``last`` is the final state
    seen (None if the connection never existed while waiting)."""

    def __init__(self, detail: str, *, last: MemberConnection | None = None) -> None:
        super().__init__({"title": "Timed out", "detail": detail})
        self.last = last


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def client_validation_error(detail: str) -> ValidationError:
    """The SDK's own refusal, raised before any request is made."""
    return ValidationError(
        {"type": PROBLEM_BASE + "validation-error", "title": "Invalid request", "detail": detail}
    )


def error_for_response(response: httpx.Response) -> TetherError:
    """The exception for an error response: its problem document, status and request id."""
    problem = _problem_of(response)
    status = response.status_code
    request_id = response.headers.get("x-request-id")
    cls: type[TetherError]
    if status in (400, 422):
        cls = ValidationError
    elif status in (401, 403):
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status in (409, 410):
        cls = ConflictError
    elif status == 429:
        return RateLimitError(
            problem,
            status=status,
            request_id=request_id,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    elif status >= 500:
        cls = ServerError
    else:
        cls = TetherError
    return cls(problem, status=status, request_id=request_id)


def _problem_of(response: httpx.Response) -> dict[str, Any]:
    """The RFC 9457 document, or one made up from the status line when the body is not one
    (a proxy's HTML error page, an empty body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("detail" in body or "title" in body):
        return body
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return _from_outcome(body, response)
    text = response.text.strip()[:200] if response.text else ""
    return {
        "type": "about:blank",
        "title": response.reason_phrase or f"HTTP {response.status_code}",
        "status": response.status_code,
        "detail": text or response.reason_phrase or f"HTTP {response.status_code}",
    }


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds, or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _from_outcome(outcome: dict[str, Any], response: httpx.Response) -> dict[str, Any]:
    """The FHIR API's errors are OperationOutcomes: the same facts as a problem document."""
    issues = outcome.get("issue") or [{}]
    first = issues[0] if isinstance(issues[0], dict) else {}
    found = first.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    problem: dict[str, Any] = {
        "type": "about:blank",
        "title": str(details.get("text") or response.reason_phrase or "Error"),
        "status": response.status_code,
        "detail": str(first.get("diagnostics") or details.get("text") or ""),
    }
    for coding in details.get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == "urn:tether:problem-code":
            problem["code"] = coding.get("code")
    return problem
