"""Request ids, a redacted access log and the API request metrics, as plain ASGI middleware."""

from __future__ import annotations

import re
import time
from typing import Any

import structlog

from tether import tracing
from tether.ids import new_secret
from tether.logging import get_logger
from tether.metrics import API_DURATION, API_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._\-]{1,100}$")
log = get_logger("tether.access")


class RequestContextMiddleware:
    """Gives every request an id (the caller's, if sane), echoes it, and logs the request.

    The access log carries the path (launch tokens scrubbed by the redaction step) and never
    the query string, which on OAuth endpoints holds codes and state.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else new_secret(12)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        method = scope.get("method", "")
        parent = None
        if tracing.enabled():
            parent = tracing.extract(
                {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
            )
        with (
            structlog.contextvars.bound_contextvars(request_id=request_id),
            tracing.span(method, kind=tracing.SpanKind.SERVER, parent=parent) as span,
        ):
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                API_REQUESTS.labels(method, route, str(status)).inc()
                API_DURATION.labels(method, route).observe(elapsed)
                if span.is_recording():
                    span.update_name(f"{method} {route}")
                    tracing.set_attributes(
                        span,
                        {
                            "http.request.method": method,
                            "http.route": route,
                            "http.response.status_code": status,
                            "tether.request_id": request_id,
                        },
                    )
                log.info(
                    "request",
                    method=method,
                    path=scope.get("path"),
                    status=status,
                    ms=round(elapsed * 1000, 1),
                )


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's template (``/v1/connections/{connection_id}``), never the path
    itself, so that metric labels stay bounded; mounted apps by their mount point."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    root = scope.get("root_path") or ""
    if isinstance(root, str) and root:
        return f"{root}/*"
    return "unmatched"
