"""tether's exception tree. Each class knows its RFC 9457 problem type, title and status.

    TetherError
    ├── ConfigurationError          start-up configuration is incomplete (not an HTTP error)
    └── ProblemError                anything answered to a client as a problem document
        ├── InvalidRequest          400  input failed validation
        ├── AuthenticationRequired  401  no, bad, expired or revoked credentials
        ├── Forbidden               403  authenticated, but not allowed
        ├── NotFound                404  no such resource (or not yours: we do not tell)
        ├── Conflict                409  the lifecycle does not allow it now
        │   └── AccessEnded         409  the data source is retired
        ├── Gone                    410  a launch link that was used or has expired
        ├── RateLimited             429
        └── UpstreamError           502  a data source answered badly

One handler (``tether.api.problems``) turns them into responses, so routes hold no try/except.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "urn:tether:problem:"


class TetherError(Exception):
    """Root of every error tether raises on purpose."""


class ConfigurationError(TetherError):
    """The configuration cannot run: raised at start-up, shown to the operator."""


class ProblemError(TetherError):
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
