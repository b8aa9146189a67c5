"""The one I/O seam: send a ``Call`` over httpx, retry what may be retried, map errors.

Retries (``retries`` extra attempts, ``DEFAULT_RETRIES`` by default) apply to idempotent calls
only — every GET, and disconnect, delete and sync-now, whose effect is the same however often
they arrive — and only after a network error, a 429 (waiting ``Retry-After`` when the server
sends one, up to ``MAX_RETRY_AFTER``) or a 502, 503 or 504. Waits grow exponentially from
``backoff`` with full jitter, capped at ``MAX_BACKOFF``. getOauthUrl and issuing a member token
are never retried: each call mints a new secret. Every attempt of one call carries the same
``X-Request-ID``, so the server's logs show the retries together.

httpx's transport errors become :class:`NetworkError` in one place, :func:`network_errors`.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from tether.client._exceptions import (
    NetworkError,
    RateLimitError,
    TetherError,
    client_validation_error,
    error_for_response,
)
from tether.client._operations import Call

T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 0.5  # seconds before the first retry (before jitter)
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 30.0  # a longer Retry-After is not waited for: RateLimitError at once
RETRY_STATUSES = frozenset({429, 502, 503, 504})
USER_AGENT = "tether-client/0.1"
REQUEST_ID_HEADER = "X-Request-ID"


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0:
            raise ValueError("retries and backoff must not be negative")

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(MAX_BACKOFF, self.backoff * 2**attempt))

    def after_error(self, call: Call[Any], attempt: int) -> float | None:
        """Seconds to wait before retrying after a network error, or None to give up."""
        if not call.idempotent or attempt >= self.retries:
            return None
        return self._backoff(attempt)

    def after_response(self, call: Call[Any], attempt: int, error: TetherError) -> float | None:
        """Seconds to wait before retrying after an error response, or None to give up."""
        if not call.idempotent or attempt >= self.retries or error.status not in RETRY_STATUSES:
            return None
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            return error.retry_after if error.retry_after <= MAX_RETRY_AFTER else None
        return self._backoff(attempt)


@contextmanager
def network_errors(call: Call[Any]) -> Iterator[None]:
    """Translate httpx's transport errors (the only foreign errors the SDK lets through)."""
    try:
        yield
    except httpx.TransportError as exc:
        detail = f"{call.method} {call.path}: {type(exc).__name__}: {exc}".rstrip(": ")
        raise NetworkError({"title": "Network error", "detail": detail}) from exc


def read(call: Call[T], response: httpx.Response) -> T:
    """The parsed result of a 2xx response; an answer of the wrong shape is a TetherError."""
    try:
        if response.status_code == 204 or not response.content:
            return call.parse(None)
        return call.parse(response.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise TetherError(
            {
                "title": "Unexpected response",
                "detail": f"{call.method} {call.path} answered something the SDK cannot read: "
                f"{type(exc).__name__}: {exc}",
            },
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from exc


def client_options(
    base_url: str, credential: str, timeout: float | httpx.Timeout
) -> dict[str, Any]:
    if not isinstance(credential, str) or not credential.strip():
        raise client_validation_error("a token (or API key) is required")
    return {
        "base_url": base_url.rstrip("/"),
        "timeout": timeout,
        "follow_redirects": False,
        "headers": {
            "Authorization": f"Bearer {credential.strip()}",
            "Accept": "application/json, application/problem+json",
            "User-Agent": USER_AGENT,
        },
    }


def _request_id() -> str:
    return secrets.token_urlsafe(12)


class SyncSender:
    """Sends calls with an ``httpx.Client``."""

    def __init__(
        self,
        base_url: str,
        credential: str,
        *,
        transport: httpx.BaseTransport | None,
        timeout: float | httpx.Timeout,
        policy: RetryPolicy,
    ) -> None:
        self.policy = policy
        self.http = httpx.Client(
            transport=transport, **client_options(base_url, credential, timeout)
        )

    def send(self, call: Call[T]) -> T:
        headers = {REQUEST_ID_HEADER: _request_id()}
        attempt = 0
        while True:
            try:
                with network_errors(call):
                    response = self.http.request(
                        call.method, call.path, params=call.params, json=call.json, headers=headers
                    )
            except NetworkError:
                delay = self.policy.after_error(call, attempt)
                if delay is None:
                    raise
            else:
                if response.is_success:
                    return read(call, response)
                error = error_for_response(response)
                delay = self.policy.after_response(call, attempt, error)
                if delay is None:
                    raise error
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self.http.close()


class AsyncSender:
    """Sends calls with an ``httpx.AsyncClient``."""

    def __init__(
        self,
        base_url: str,
        credential: str,
        *,
        transport: httpx.AsyncBaseTransport | None,
        timeout: float | httpx.Timeout,
        policy: RetryPolicy,
    ) -> None:
        self.policy = policy
        self.http = httpx.AsyncClient(
            transport=transport, **client_options(base_url, credential, timeout)
        )

    async def send(self, call: Call[T]) -> T:
        headers = {REQUEST_ID_HEADER: _request_id()}
        attempt = 0
        while True:
            try:
                with network_errors(call):
                    response = await self.http.request(
                        call.method, call.path, params=call.params, json=call.json, headers=headers
                    )
            except NetworkError:
                delay = self.policy.after_error(call, attempt)
                if delay is None:
                    raise
            else:
                if response.is_success:
                    return read(call, response)
                error = error_for_response(response)
                delay = self.policy.after_response(call, attempt, error)
                if delay is None:
                    raise error
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self.http.aclose()
