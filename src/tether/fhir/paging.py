"""Reading a FHIR R4 search, page by page (FHIR R4 §3.1.1.3 "Paging", Bundle.link ``next``).

:meth:`PageReader.pages` yields a search's pages, asynchronously (a worker keeps hundreds of
syncs' requests in flight on one event loop), each turned into whatever the caller's ``parse``
makes of the body's bytes (the sync parses and checks them off the event loop) together with
its ``next`` link. It follows ``next`` links only on the
source's own origin and only up to a page limit, honours ``429`` + ``Retry-After`` (waiting
inline when the wait is short), retries 5xx and timeouts with jittered exponential backoff
(stamina), and turns everything else into a :class:`PageError` with a sync-error code, so the
caller can record exactly what went wrong. Every request, retries included, is sent inside the
reader's ``slot`` (the source's concurrency and per-minute limits: :mod:`tether.sync.budgets`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import orjson
import stamina

from tether.errors import PageError, TransientPageError, Unauthorized
from tether.fhir.bundles import next_link
from tether.store.models import utcnow

DEFAULT_PAGE_SIZE = 500
DEFAULT_MAX_PAGES = 5000
MAX_INLINE_RETRY_AFTER = 10.0  # seconds we are willing to wait inside a sync
RETRY_ATTEMPTS = 4
RETRY_TIMEOUT = 60.0
FHIR_JSON = "application/fhir+json"

T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class Answer:
    """A source's whole answer to one GET."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes


class NoAnswer(Exception):
    """A request got no HTTP answer: it timed out, or its connection failed."""

    def __init__(self, why: str, *, timed_out: bool) -> None:
        super().__init__(why)
        self.timed_out = timed_out


class SourceClient(Protocol):
    """Sends one GET to a source and reads its whole answer (the sync's is
    :class:`tether.sync.source_http.SourceRequests`); raises :class:`NoAnswer` when there is
    none. Never follows redirects, never keeps cookies."""

    async def get(
        self, url: str, *, params: Mapping[str, str] | None, headers: Mapping[str, str]
    ) -> Answer: ...


def _why(answer: Answer) -> str:
    """``: <diagnostics>`` of an OperationOutcome's first issue, when the body has one."""
    try:
        issue = (orjson.loads(answer.content).get("issue") or [{}])[0]
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    text = issue.get("diagnostics") if isinstance(issue, dict) else None
    return f": {text[:200]}" if isinstance(text, str) and text else ""


def _backoff(exc: Exception) -> bool | float:
    if isinstance(exc, TransientPageError):
        return exc.wait if exc.wait is not None else True
    return False


@dataclass
class PageReader:
    """Reads one sync's searches page by page; ``authorization`` gives the current header
    value (a bearer token that may be swapped after a refresh, or Basic credentials), and
    ``slot`` the context each request is sent in, which gives the :class:`SourceClient` to
    send it on."""

    base_url: str
    authorization: Callable[[], str]
    slot: Callable[[], AbstractAsyncContextManager[SourceClient]]
    max_pages: int = DEFAULT_MAX_PAGES
    accept: str = FHIR_JSON  # the media type the source wants asked for (its profile)
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

    async def _get_once(self, url: str, params: dict[str, str] | None) -> bytes:
        try:
            async with self.slot() as http:
                self.requests += 1
                response = await http.get(
                    url,
                    params=params,
                    headers={"Authorization": self.authorization(), "Accept": self.accept},
                )
        except NoAnswer as exc:
            why = "timed out" if exc.timed_out else str(exc)
            raise TransientPageError(why, code="SOURCE_UNAVAILABLE") from exc
        status = response.status
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
        if status == 406:
            raise PageError("INVALID_RESPONSE", "the source refused the Accept media type (406)")
        if status == 400:
            why = _why(response)
            raise PageError("INVALID_RESPONSE", f"the source refused the search (400{why})")
        if status != 200:
            raise PageError("INVALID_RESPONSE", f"unexpected HTTP {status}")
        return response.content

    async def get(self, url: str, params: dict[str, str] | None = None) -> bytes:
        """One page's body, with retries for transient failures."""
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

    async def pages(
        self,
        url: str,
        params: dict[str, str] | None,
        parse: Callable[[bytes], Awaitable[tuple[T, str | None]]],
    ) -> AsyncGenerator[T, None]:
        """Every page of a search as ``parse`` makes it (``parse`` also gives the page's
        ``next`` link, and raises PageError for a page that is not a searchset Bundle),
        following ``next`` within the source and the page limit.

        The next page is asked for while this one is parsed, when its ``next`` link can be
        read ahead (:func:`next_link_ahead`): a search's pages come at the speed of the
        slower of the source and the parse, not of both added up. ``parse``'s link decides;
        a request sent ahead for another link is dropped. Close the iterator (``aclosing``)
        when leaving it early, so that a request sent ahead is cancelled at once."""
        body = await self.get(url, params)
        count = 1
        ahead: asyncio.Task[bytes] | None = None
        try:
            while True:
                early = next_link_ahead(body)
                if isinstance(early, str) and count < self.max_pages and self._same_origin(early):
                    ahead = asyncio.create_task(self.get(early), name="fhir-page-ahead")
                page, next_url = await parse(body)
                yield page
                if not next_url:
                    return
                if not self._same_origin(next_url):
                    raise PageError("INVALID_RESPONSE", "a next link leaves the source's FHIR base")
                if count >= self.max_pages:
                    raise PageError("PAGING_LIMIT", f"more than {self.max_pages} pages")
                if ahead is not None and next_url == early:
                    task, ahead = ahead, None
                    body = await task
                else:
                    await _drop(ahead)
                    ahead = None
                    body = await self.get(next_url)
                count += 1
        finally:
            await _drop(ahead)


async def _drop(task: asyncio.Task[bytes] | None) -> None:
    """Cancel a page request sent ahead that will not be used, and wait until it is gone."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class _Unknown:
    """The ``next`` link cannot be known without parsing the whole page."""


UNKNOWN = _Unknown()


def next_link_ahead(body: bytes) -> str | _Unknown | None:
    """The ``next`` link of a searchset page, read without parsing its entries; or UNKNOWN.

    Servers write ``link`` before ``entry`` (FHIR's element order), so the page's top-level
    members before the first ``"entry"`` are parsed on their own: when the text up to there,
    closed with ``}``, is a JSON object, ``"entry"`` was a top-level key (a key deeper down,
    or text inside a string, leaves the object unclosed or the cut after a ``:``) and that
    object holds every top-level member before it. When it has no ``link``, ``link`` may
    follow the entries: UNKNOWN, and the caller waits for the whole page's parse."""
    cut = body.find(b'"entry"')
    if cut < 0:
        return UNKNOWN
    head = body[:cut].rstrip()
    if not head.endswith(b","):
        return UNKNOWN
    try:
        top = orjson.loads(head[:-1] + b"}")
    except orjson.JSONDecodeError:
        return UNKNOWN
    links = top.get("link") if isinstance(top, dict) else None
    if not isinstance(links, list):
        return UNKNOWN
    url = next_link(links)
    return url if url is None or isinstance(url, str) else UNKNOWN
