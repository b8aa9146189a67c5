"""Reading a FHIR R4 search, page by page (FHIR R4 §3.1.1.3 "Paging", Bundle.link ``next``).

:meth:`PageReader.pages` yields parsed searchset Bundles, asynchronously: a worker keeps
hundreds of syncs' requests in flight on one event loop. It follows ``next`` links only on the
source's own origin and only up to a page limit, honours ``429`` + ``Retry-After`` (waiting
inline when the wait is short), retries 5xx and timeouts with jittered exponential backoff
(stamina), and turns everything else into a :class:`PageError` with a sync-error code, so the
caller can record exactly what went wrong. Every request, retries included, is sent inside the
reader's ``budget`` (the source's concurrency and per-minute limits: :mod:`tether.sync.budgets`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import stamina

from tether.errors import PageError, TransientPageError, Unauthorized
from tether.store.models import utcnow

DEFAULT_PAGE_SIZE = 500
DEFAULT_MAX_PAGES = 5000
MAX_INLINE_RETRY_AFTER = 10.0  # seconds we are willing to wait inside a sync
RETRY_ATTEMPTS = 4
RETRY_TIMEOUT = 60.0
FHIR_JSON = "application/fhir+json"


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def _backoff(exc: Exception) -> bool | float:
    if isinstance(exc, TransientPageError):
        return exc.wait if exc.wait is not None else True
    return False


def _no_budget() -> AbstractAsyncContextManager[None]:
    return nullcontext()


@dataclass
class PageReader:
    """Reads one sync's searches page by page; ``authorization`` gives the current header
    value (a bearer token that may be swapped after a refresh, or Basic credentials), and
    ``budget`` the slot each request is sent in."""

    http: httpx.AsyncClient
    base_url: str
    authorization: Callable[[], str]
    budget: Callable[[], AbstractAsyncContextManager[Any]] = _no_budget
    max_pages: int = DEFAULT_MAX_PAGES
    retry_attempts: int = RETRY_ATTEMPTS
    retry_timeout: float = RETRY_TIMEOUT
    # What this reader did, for the sync's history: requests sent, of which retries, and the
    # seconds the source's Retry-After asked it to wait.
    requests: int = 0
    retries: int = 0
    throttled_seconds: float = 0.0

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc) and a.path.startswith(b.path)

    async def _get_once(self, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        try:
            async with self.budget():
                self.requests += 1
                response = await self.http.get(
                    url,
                    params=params,
                    headers={"Authorization": self.authorization(), "Accept": FHIR_JSON},
                )
        except httpx.TimeoutException as exc:
            raise TransientPageError("timed out", code="SOURCE_UNAVAILABLE") from exc
        except httpx.TransportError as exc:
            raise TransientPageError(type(exc).__name__, code="SOURCE_UNAVAILABLE") from exc
        status = response.status_code
        if status == 401:
            raise Unauthorized()
        if status == 429:
            wait = retry_after_seconds(response.headers.get("retry-after"))
            if wait is not None and wait > MAX_INLINE_RETRY_AFTER:
                raise PageError("RATE_LIMITED", "rate limited", retry_after=wait)
            self.throttled_seconds += wait or 0.0
            raise TransientPageError("rate limited", wait=wait, code="RATE_LIMITED")
        if status >= 500:
            raise TransientPageError(f"HTTP {status}", code="SOURCE_UNAVAILABLE")
        if status == 403:
            raise PageError("ACCESS_FORBIDDEN", "the source answered 403")
        if status == 404:
            raise PageError("PATIENT_RETRIEVAL_ERROR", "the source answered 404")
        if status != 200:
            raise PageError("INVALID_RESPONSE", f"unexpected HTTP {status}")
        try:
            bundle = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise PageError("INVALID_RESPONSE", "the page is not JSON") from None
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise PageError("INVALID_RESPONSE", "the page is not a FHIR Bundle")
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            raise PageError("INVALID_RESPONSE", "Bundle.entry is not a list")
        return bundle

    async def get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """One page, with retries for transient failures."""
        last: TransientPageError | None = None
        try:
            async for attempt in stamina.retry_context(
                on=_backoff,
                attempts=self.retry_attempts,
                timeout=self.retry_timeout,
                wait_initial=0.2,
                wait_max=5.0,
                wait_jitter=0.3,
            ):
                with attempt:
                    if attempt.num > 1:
                        self.retries += 1
                    try:
                        return await self._get_once(url, params)
                    except TransientPageError as exc:
                        last = exc
                        raise
        except TransientPageError as exc:
            raise PageError(exc.code, f"gave up after retries: {exc}") from None
        raise PageError(last.code if last else "SOURCE_UNAVAILABLE", "gave up")  # pragma: no cover

    async def pages(self, url: str, params: dict[str, str] | None) -> AsyncIterator[dict[str, Any]]:
        """Every page of a search, following ``next`` within the source and the page limit."""
        page = await self.get(url, params)
        count = 1
        while True:
            yield page
            next_url = next(
                (
                    link.get("url")
                    for link in page.get("link", []) or []
                    if isinstance(link, dict) and link.get("relation") == "next"
                ),
                None,
            )
            if not next_url:
                return
            if not isinstance(next_url, str) or not self._same_origin(next_url):
                raise PageError("INVALID_RESPONSE", "a next link leaves the source's FHIR base")
            if count >= self.max_pages:
                raise PageError("PAGING_LIMIT", f"more than {self.max_pages} pages")
            page = await self.get(next_url)
            count += 1
