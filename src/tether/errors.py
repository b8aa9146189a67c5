"""tether's exception tree: every error the server raises on purpose, and when.

    ServerError
    ├── ConfigurationError          start-up configuration is incomplete (shown to the operator)
    ├── VaultError                  a sealed value cannot be opened (wrong key, wrong row)
    ├── ProblemError                answered to a client as an RFC 9457 problem document
    │   ├── InvalidRequest          400  input failed validation
    │   ├── AuthenticationRequired  401  no, bad, expired or revoked credentials
    │   ├── Forbidden               403  authenticated, but not allowed
    │   ├── NotFound                404  no such resource (or not yours: we do not tell)
    │   ├── Conflict                409  the lifecycle does not allow it now
    │   │   └── AccessEnded         409  the data source is retired
    │   ├── Gone                    410  a launch link that was used or has expired
    │   ├── RateLimited             429
    │   └── UpstreamError           502  a data source answered badly
    ├── SourceError                 talking to a data source went wrong (never reaches a client)
    │   ├── OAuthProtocolError      its authorization server said no (``error`` is RFC 6749's)
    │   ├── SourceUnavailable       it could not be reached or answered garbage: retry later
    │   ├── SourceIncompatible      its discovery rules out how tether talks to it (no PKCE S256,
    │   │                           not the configured client authentication): fix the directory
    │   └── PageError               a FHIR search page could not be read (``code``: sync error)
    │       ├── Unauthorized        401: the access token is no longer accepted
    │       └── TransientPageError  5xx, timeout, short 429: retried inside the page reader
    ├── Fenced                      the connection's grant epoch moved on: a job stops writing
    └── JobError                    the job queue
        ├── UnknownTask             ``enqueue`` of a name nobody declared (a bug; a LookupError)
        ├── QueueUnavailable        the queue's store refused the message (the sweeper re-drives)
        └── RetryLater              raised by a task: run me again later

Only :class:`ProblemError` reaches a client. One handler (``tether.http.rfc9457``) renders it,
so routes hold no try/except; services translate the others (a source that cannot be reached
during a member's request becomes an :class:`UpstreamError`).
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "urn:tether:problem:"

# Problem slugs → FHIR IssueType codes (http://hl7.org/fhir/issue-type), for the places that
# answer in FHIR's terms: the SDK's GraphQL interface and the FHIR API's OperationOutcomes.
ISSUE_TYPES: dict[str, str] = {
    "invalid-request": "invalid",
    "validation-error": "invalid",
    "unauthenticated": "login",
    "forbidden": "forbidden",
    "not-found": "not-found",
    "method-not-allowed": "not-supported",
    "conflict": "conflict",
    "access-ended": "business-rule",
    "gone": "expired",
    "rate-limited": "throttled",
    "upstream-error": "transient",
    "unavailable": "transient",
    "not-supported": "not-supported",
    "too-costly": "too-costly",
    "export-failed": "exception",
    "internal": "exception",
}


class ServerError(Exception):
    """Root of every error the tether server raises on purpose (the SDK has its own root,
    ``tether.client.TetherError``)."""


class ConfigurationError(ServerError):
    """The configuration cannot run: raised at start-up, shown to the operator."""


class VaultError(ServerError):
    """A sealed value cannot be opened: wrong key, tampered, or bound to another row."""


class ProblemError(ServerError):
    """An error that is answered to the client as an RFC 9457 problem document."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, code: str | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def to_problem(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.code:
            doc["code"] = self.code
        doc.update(self.extensions)
        return doc


class InvalidRequest(ProblemError):
    status = 400
    slug = "invalid-request"
    title = "Invalid request"


class AuthenticationRequired(ProblemError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(ProblemError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(ProblemError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class AccessEnded(Conflict):
    slug = "access-ended"
    title = "Access ended"


class Gone(ProblemError):
    status = 410
    slug = "gone"
    title = "Gone"


class RateLimited(ProblemError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class UpstreamError(ProblemError):
    status = 502
    slug = "upstream-error"
    title = "The data source answered badly"


class ServiceUnavailable(ProblemError):
    """tether cannot serve the request now (its database is unreachable): try again."""

    status = 503
    slug = "unavailable"
    title = "Service unavailable"


class SourceError(ServerError):
    """Base of the errors raised while talking to a data source (OAuth or FHIR)."""


class OAuthProtocolError(SourceError):
    """The authorization server refused (``error`` holds the RFC 6749 error code)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description or ''}".rstrip(": "))
        self.error = error
        self.description = description


class SourceUnavailable(SourceError):
    """The source could not be reached or answered garbage; retrying later may work."""


class SourceIncompatible(SourceError):
    """The source's discovery advertises something tether cannot use with this directory
    entry (no PKCE S256, not the configured client authentication); retrying will not help."""


class PageError(SourceError):
    """A FHIR search page could not be read; ``code`` is a sync-error code
    (``tether.connections.sync_errors``) and ``retry_after`` the source's Retry-After."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class Unauthorized(PageError):
    """401: the access token is no longer accepted (refresh, then retry)."""

    def __init__(self) -> None:
        super().__init__("AUTHORIZATION_EXPIRED", "the source answered 401")


class TransientPageError(PageError):
    """A failure worth retrying (5xx, timeout, 429 with a short Retry-After); ``wait`` is the
    source's Retry-After when it sent one. The page reader retries it and, when it gives up,
    raises a plain :class:`PageError` with the same code."""

    def __init__(self, message: str, *, code: str, wait: float | None = None) -> None:
        super().__init__(code, message, retry_after=wait)
        self.wait = wait


class Fenced(ServerError):
    """The connection's grant epoch moved on (or it is no longer CONNECTED): stop writing."""


class JobError(ServerError):
    """Base of the job queue's errors."""


class UnknownTask(JobError, LookupError):
    """``enqueue`` was given a name no registered task has (a programming error)."""


class QueueUnavailable(JobError):
    """The queue's store (Redis, PostgreSQL, the SQLite file) refused the message.

    The database stays the truth, so a caller may log this and go on: the sweeper re-drives
    the work once the queue is back.
    """


class RetryLater(JobError):
    """Raised by a task function: run this task again in ``delay`` seconds.

    With ``delay=None`` the task's backoff picks the delay (exponential, jittered). A source's
    ``Retry-After`` is the natural explicit delay. Each retry uses one of the task's
    ``retries``; when none are left the task gives up (logged), and the sweeper re-drives the
    work from the database later.
    """

    def __init__(self, delay: float | None = None, *, reason: str = "") -> None:
        super().__init__(reason or "retry later")
        self.delay = delay
        self.reason = reason
