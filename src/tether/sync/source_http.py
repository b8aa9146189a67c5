"""The sync's HTTP client for FHIR searches: one aiohttp session per event loop.

Every other outbound request of tether (token endpoints, discovery, reads from blocking code,
the SDK) goes through httpx. The sync's page requests, hundreds in flight on one event loop,
go through aiohttp, whose HTTP/1.1 parser is C (llhttp) and whose pool hands out a free
connection without looking at the others. Measured on this machine (2026-12-05, one process
sending GETs to a loopback server that answers at once, ``/tmp`` script in
docs/benchmarks.md, "Fleet"), the client's CPU a request:

============  =========================  ==============
in flight     httpx 0.28 / httpcore 1.0  aiohttp 3.14
============  =========================  ==============
1             450-610 µs                 150 µs
10            840-1,040 µs               80 µs
100           1,110-1,250 µs             77 µs
============  =========================  ==============

At about thirteen requests a sync, that was a third of a fleet worker's CPU.

The session keeps httpx's conventions for the source: the same trust store
(:func:`tether.runtime.outbound_tls`: certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), proxies from
the environment (:func:`proxy_for`), no redirects followed, no cookies kept (a source's
connections carry every member's syncs: a cookie one member's answer set must not go out
with another's), tether's User-Agent, ``TETHER_HTTP_TIMEOUT`` for each read and 10 s to
connect. Each request is counted and timed as its source's
(:class:`tether.metrics.SourceMeter`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from tether.fhir.paging import Answer, NoAnswer
from tether.metrics import SourceMeter
from tether.runtime import USER_AGENT, outbound_tls


class SourceHttp:
    """The event loop's session to every source (made on first use, inside the loop), and
    each source's view of it."""

    def __init__(self, *, connections: int, timeout: httpx.Timeout) -> None:
        self.connections = connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeout.connect, sock_read=timeout.read
        )
        self._session: aiohttp.ClientSession | None = None
        self._sources: dict[str, SourceRequests] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.connections,
                    limit_per_host=0,
                    ssl=outbound_tls(),
                ),
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # proxies: see proxy_for
            )
        return self._session

    def source(self, name: str) -> SourceRequests:
        """``name``'s requests: sent on the shared session, counted as ``name``'s."""
        requests = self._sources.get(name)
        if requests is None:
            requests = self._sources[name] = SourceRequests(self, name)
        return requests

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SourceRequests:
    """One data source's GETs (a :class:`tether.fhir.paging.SourceClient`)."""

    def __init__(self, http: SourceHttp, source: str) -> None:
        self._http = http
        self.meter = SourceMeter(source)

    async def get(
        self, url: str, *, params: Mapping[str, str] | None, headers: Mapping[str, str]
    ) -> Answer:
        # The URL as the source wrote it (a next link's cursor is opaque: not re-quoted).
        target = URL(url, encoded=True)
        if params:
            target = target.extend_query(params)
        proxy, proxy_auth = proxy_for(target.scheme, target.host or "")
        with self.meter.measure("GET", target.host, target.port) as measured:
            try:
                async with self._http.session().get(
                    target,
                    headers=headers,
                    allow_redirects=False,
                    proxy=proxy,
                    proxy_auth=proxy_auth,
                ) as response:
                    content = await response.read()
            except aiohttp.InvalidURL:
                raise  # not the source's failure to answer: nothing to retry
            except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
                measured.failed(timed_out=True)
                raise NoAnswer("timed out", timed_out=True) from exc
            except aiohttp.ClientError as exc:
                measured.failed(timed_out=False)
                raise NoAnswer(type(exc).__name__, timed_out=False) from exc
            measured.answered(response.status, response.headers.get("Retry-After"))
        return Answer(response.status, response.headers, content)


@functools.lru_cache(maxsize=1024)
def proxy_for(scheme: str, host: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for ``scheme://host`` (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``NO_PROXY``, as httpx reads them too), looked up once per origin. aiohttp's own
    ``trust_env`` looks it up, and ``~/.netrc``, in a thread on every request: two thread hops
    a request, measurable in a busy worker."""
    try:
        return get_env_proxy_for_url(URL.build(scheme=scheme, host=host))
    except LookupError:
        return None, None
