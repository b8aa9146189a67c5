"""Rate limits per credential and per client address, with the IETF RateLimit headers.

Every request that carries a bearer credential counts against that credential: the tenant's
API key (``TETHER_RATE_LIMIT_API_KEY`` a minute) or a member's token
(``TETHER_RATE_LIMIT_MEMBER``), and so does the member page's or the console's session
cookie; one without counts against its client address (``TETHER_RATE_LIMIT_ANONYMOUS``: the
OAuth pages, the member page's entry, the console's sign-in, unauthenticated GraphQL). The
credential is counted by a hash, never stored, and before it is verified, so a flood of bad
tokens costs the flooder its own budget.

Counts live in Redis when one is configured (``TETHER_RATE_LIMIT_URL``, or the queue's
``redis://`` URL), so every process of a deployment shares them; otherwise in this process.
The algorithm is the ``limits`` library's sliding window counter. If Redis cannot be reached
the request is let through (and logged): an outage of the limiter is not an outage of tether.

Answers carry ``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers):
``RateLimit-Policy: "member";q=300;w=60`` and ``RateLimit: "member";r=297;t=41`` (requests
remaining, seconds until the window frees them). Past the limit: ``429`` with ``Retry-After``
and a problem document.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import anyio
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.errors import PROBLEM_BASE
from tether.http.rfc9457 import PROBLEM_JSON
from tether.logging import get_logger
from tether.settings import Settings

log = get_logger("tether.http")

# Not counted: probes, metrics (scraped on their own schedule), the mounted sandbox (a stand-in
# for the data sources, not tether's API), static files and the API's own description.
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/metrics", "/sandbox", "/app/static", "/docs")
SESSION_PAGES = ("/app", "/console")
EXEMPT_PATHS = frozenset({"/openapi.json", "/favicon.ico", "/.well-known/jwks.json"})


@dataclass(frozen=True)
class Policy:
    name: str
    per_minute: int

    @property
    def item(self) -> RateLimitItemPerMinute:
        return RateLimitItemPerMinute(self.per_minute)


def storage_url(settings: Settings) -> str:
    return settings.shared_state_url or "memory://"


class RateLimitMiddleware:
    """ASGI middleware: count, answer 429 past the limit, add the RateLimit headers."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.url = storage_url(settings)
        self.shared = not self.url.startswith("memory://")
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(self.url))
        self.policies = {
            "api-key": Policy("api-key", settings.rate_limit_api_key),
            "member": Policy("member", settings.rate_limit_member),
            "anonymous": Policy("anonymous", settings.rate_limit_anonymous),
        }

    def _classify(self, scope: Scope) -> tuple[Policy, str]:
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                scheme, _, credential = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and credential.strip():
                    token = credential.strip()
                    kind = "api-key" if token.startswith("tk_") else "member"
                    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
                    return self.policies[kind], digest
            if name == b"cookie" and scope.get("path", "").startswith(SESSION_PAGES):
                # The member page and the console: their signed session cookie is the
                # credential (counted like a member, or like the API key that opened it).
                kind = "api-key" if scope["path"].startswith("/console") else "member"
                return self.policies[kind], hashlib.sha256(value).hexdigest()[:32]
        client = scope.get("client")
        return self.policies["anonymous"], client[0] if client else "unknown"

    def _count(self, policy: Policy, key: str) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until reset)."""
        item = policy.item
        allowed = self.limiter.hit(item, policy.name, key)
        stats = self.limiter.get_window_stats(item, policy.name, key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return allowed, max(0, stats.remaining), reset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        policy, key = self._classify(scope)
        if policy.per_minute <= 0:
            await self.app(scope, receive, send)
            return
        try:
            if self.shared:  # a network round trip: off the event loop
                allowed, remaining, reset = await anyio.to_thread.run_sync(self._count, policy, key)
            else:
                allowed, remaining, reset = self._count(policy, key)
        except Exception as exc:  # the limiter's store is down: let the request through
            log.warning("rate_limit.unavailable", error=type(exc).__name__)
            await self.app(scope, receive, send)
            return
        headers = [
            (b"ratelimit-policy", f'"{policy.name}";q={policy.per_minute};w=60'.encode()),
            (b"ratelimit", f'"{policy.name}";r={remaining};t={reset}'.encode()),
        ]
        if not allowed:
            await _too_many(scope, send, policy, reset, headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _too_many(
    scope: Scope, send: Send, policy: Policy, reset: int, headers: list[tuple[bytes, bytes]]
) -> None:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + "rate-limited",
        "title": "Too many requests",
        "status": 429,
        "detail": f"more than {policy.per_minute} requests a minute; retry after {reset} s",
        "code": "RATE_LIMITED",
        "instance": scope.get("path", ""),
        "retryAfter": reset,
    }
    request_id = (scope.get("state") or {}).get("request_id")
    if request_id:
        body["requestId"] = request_id
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", str(reset).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
