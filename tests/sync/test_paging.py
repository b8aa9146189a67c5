"""Reading a search's pages: the next page is asked for while this one is parsed, when its
``next`` link can be read ahead, and only then; ``parse``'s link decides. Over real HTTP on
loopback, against a small FHIR server that writes its pages as the test says."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response

from tether.errors import PageError
from tether.fhir.paging import UNKNOWN, Answer, NoAnswer, PageReader, next_link_ahead
from tether.metrics import REGISTRY
from tether.runtime import USER_AGENT
from tether.sync.source_http import SourceHttp, SourceRequests, proxy_for
from tether.testing.live_server import LiveServer

PAGES = 3


def bundle(
    base: str, index: int, *, link_first: bool = True, extra_link: str | None = None
) -> bytes:
    """Page ``index`` of a searchset: two Observations, ``next`` to the following page."""
    links = [{"relation": "self", "url": f"{base}/Observation?page={index}"}]
    if index + 1 < PAGES:
        links.append({"relation": "next", "url": f"{base}/Observation?page={index + 1}"})
    entry = [
        {"resource": {"resourceType": "Observation", "id": f"o{index}-{n}", "status": "final"}}
        for n in range(2)
    ]
    page: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if link_first:
        page |= {"link": links, "entry": entry}
    else:
        page |= {"entry": entry, "link": links}
    text = orjson.dumps(page)
    if extra_link is not None:  # a second top-level "link" after the entries: the last counts
        text = text[:-1] + b',"link":[{"relation":"next","url":"' + extra_link.encode() + b'"}]}'
    return text


class Source:
    """A FHIR server on loopback that logs when each page was asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, float]] = []
        self.link_first = True
        self.extra_link: str | None = None
        self.delay = 0.0  # seconds before answering a page after the first
        self.app = FastAPI()

        @self.app.get("/fhir/Observation")
        async def search(request: Request, page: int = 0) -> Response:
            self.asked.append((page, time.monotonic()))
            if page:
                await asyncio.sleep(self.delay)
            base = str(request.base_url).rstrip("/") + "/fhir"
            extra = self.extra_link if page == 0 else None
            body = bundle(base, page, link_first=self.link_first, extra_link=extra)
            return Response(body, media_type="application/fhir+json")


@pytest.fixture
def source() -> Iterator[tuple[Source, str]]:
    src = Source()
    live = LiveServer(src.app)
    live.start()
    try:
        yield src, f"{live.url}/fhir"
    finally:
        live.stop()


@asynccontextmanager
async def source_http() -> AsyncIterator[SourceHttp]:
    """The worker's client to sources, on the running loop."""
    http = SourceHttp(connections=10, timeout=httpx.Timeout(10))
    try:
        yield http
    finally:
        await http.aclose()


def reader(http: SourceHttp, base: str) -> PageReader:
    """A reader that sends every request on ``http`` as the sandbox's (no budget)."""

    @asynccontextmanager
    async def slot() -> AsyncIterator[SourceRequests]:
        yield http.source("sandbox-clinic")

    return PageReader(base_url=base, authorization=lambda: "Bearer t", slot=slot)


async def read_all(
    base: str, parse_seconds: float = 0.3
) -> tuple[list[str], list[tuple[float, float]]]:
    """Every page's first id, and when each parse started and ended."""
    parsing: list[tuple[float, float]] = []

    async def parse(body: bytes) -> tuple[str, str | None]:
        start = time.monotonic()
        await asyncio.sleep(parse_seconds)  # a parse that takes a while (a big page)
        page = orjson.loads(body)
        parsing.append((start, time.monotonic()))
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        return page["entry"][0]["resource"]["id"], (nxt[0] if nxt else None)

    async with source_http() as http:
        search = reader(http, base).pages(f"{base}/Observation", {"page": "0"}, parse)
        async with aclosing(search):
            ids = [first async for first in search]
    return ids, parsing


def test_the_next_page_is_asked_for_while_this_one_is_parsed(source: tuple[Source, str]) -> None:
    src, base = source
    ids, parsing = asyncio.run(read_all(base))
    assert ids == ["o0-0", "o1-0", "o2-0"]
    assert [page for page, _ in src.asked] == [0, 1, 2]
    # Page n+1 was asked for before page n's parse ended.
    for n in range(PAGES - 1):
        assert src.asked[n + 1][1] < parsing[n][1]


def test_a_link_after_the_entries_is_followed_after_the_parse(
    source: tuple[Source, str],
) -> None:
    src, base = source
    src.link_first = False
    ids, parsing = asyncio.run(read_all(base))
    assert ids == ["o0-0", "o1-0", "o2-0"]
    for n in range(PAGES - 1):
        assert src.asked[n + 1][1] >= parsing[n][1]


def test_the_parse_decides_which_link_is_followed(source: tuple[Source, str]) -> None:
    src, base = source
    # Page 0's text names page 1 first and page 2 last: the parse (the last wins) says 2.
    src.extra_link = f"{base}/Observation?page=2"
    ids, _ = asyncio.run(read_all(base))
    assert ids == ["o0-0", "o2-0"]
    # Page 1 was asked for ahead and dropped; nothing read it.
    assert [page for page, _ in src.asked][-1] == 2


def test_a_page_that_fails_its_parse_leaves_no_request_behind(
    source: tuple[Source, str],
) -> None:
    src, base = source
    src.delay = 1.0  # the page asked for ahead is still on its way when the parse fails

    async def run() -> set[asyncio.Task[Any]]:
        async def parse(body: bytes) -> tuple[str, str | None]:
            await asyncio.sleep(0.05)
            raise PageError("INVALID_RESPONSE", "a bad page")

        async with source_http() as http:
            search = reader(http, base).pages(f"{base}/Observation", {"page": "0"}, parse)
            async with aclosing(search):
                with pytest.raises(PageError):
                    await anext(search)
            return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    assert asyncio.run(run()) == set()


def test_a_page_read_leaves_no_response_for_the_cyclic_collector(
    source: tuple[Source, str],
) -> None:
    """A read response is freed with its body when the sync drops it, not when the cyclic
    collector gets round to it (the worker's collector runs rarely: :mod:`tether.heap`)."""
    _, base = source

    async def run() -> bytes:
        async with source_http() as http:
            return await reader(http, base).get(f"{base}/Observation?page=1")

    gc.collect()
    gc.disable()
    try:
        body = asyncio.run(run())
        left = [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientResponse)]
    finally:
        gc.enable()
    assert orjson.loads(body)["entry"][0]["resource"]["id"] == "o1-0"
    assert left == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"resourceType":"Bundle","link":[{"relation":"next","url":"u2"}],"entry":[]}', "u2"),
        (b'{"resourceType":"Bundle","link":[{"relation":"self","url":"u"}],"entry":[]}', None),
        (b'{ "link" : [ {"relation":"next","url":"u2"} ] ,\n "entry" : [] }', "u2"),
        # The link after the entries, or no link before them: only the whole parse knows.
        (b'{"resourceType":"Bundle","entry":[],"link":[{"relation":"next","url":"u2"}]}', UNKNOWN),
        (b'{"resourceType":"Bundle","total":0}', UNKNOWN),
        # "entry" deeper down, or as a value: not the top-level key.
        (b'{"meta":{"entry":1},"link":[{"relation":"next","url":"u2"}],"entry":[]}', UNKNOWN),
        (b'{"type":"entry","link":[{"relation":"next","url":"u2"}],"entry":[]}', UNKNOWN),
        (b'{"link":[{"relation":"next","url":3}],"entry":[]}', UNKNOWN),
        (b'not json "entry" at all', UNKNOWN),
    ],
)
def test_next_link_ahead(text: bytes, expected: object) -> None:
    assert next_link_ahead(text) == expected


def test_a_sources_cookies_never_travel_with_another_request() -> None:
    """The worker's client for a source carries every member's syncs: a cookie the source
    sets on one member's response is not kept, so it is never sent with the next request."""
    app = FastAPI()
    cookies_seen: list[str | None] = []

    @app.get("/fhir/Patient")
    async def patient(request: Request) -> Response:
        cookies_seen.append(request.headers.get("cookie"))
        response = Response(b"{}", media_type="application/fhir+json")
        response.set_cookie("session", "member-a", httponly=True)
        return response

    live = LiveServer(app)
    live.start()

    async def twice() -> None:
        async with source_http() as http:
            client = http.source("sandbox-clinic")
            for member in ("a", "b"):
                answer = await client.get(
                    f"{live.url}/fhir/Patient", params={"member": member}, headers={}
                )
                assert answer.headers["set-cookie"].startswith("session=member-a")
            assert len(http.session().cookie_jar) == 0

    try:
        asyncio.run(twice())
    finally:
        live.stop()
    assert cookies_seen == [None, None]


def test_the_source_client_sends_what_a_fhir_server_expects() -> None:
    """One GET as the source sees it: the query encoded (``+`` of a time zone kept), a link's
    own encoding untouched, tether's User-Agent, no redirect followed, the whole body read."""
    app = FastAPI()
    seen: list[tuple[str, str | None, str | None]] = []

    @app.get("/fhir/Observation")
    async def search(request: Request) -> Response:
        seen.append(
            (request.url.query, request.headers.get("user-agent"), request.headers.get("accept"))
        )
        return Response(b'{"resourceType":"Bundle"}' * 1000, media_type="application/fhir+json")

    @app.get("/fhir/Moved")
    async def moved() -> Response:
        return Response(status_code=302, headers={"Location": "/fhir/Observation"})

    live = LiveServer(app)
    live.start()

    async def run() -> list[Answer]:
        async with source_http() as http:
            client = http.source("sandbox-clinic")
            headers = {"Accept": "application/fhir+json"}
            since = {"patient": "p 1", "_lastUpdated": "ge2026-01-01T00:00:00+01:00"}
            return [
                await client.get(f"{live.url}/fhir/Observation", params=since, headers=headers),
                await client.get(
                    f"{live.url}/fhir/Observation?_getpages=a%2Bb%3D&_offset=2",
                    params=None,
                    headers=headers,
                ),
                await client.get(f"{live.url}/fhir/Moved", params=None, headers=headers),
            ]

    try:
        first, link, moved = asyncio.run(run())
    finally:
        live.stop()
    assert first.status == 200 and len(first.content) == 25_000
    assert link.status == 200
    assert moved.status == 302 and moved.headers["location"] == "/fhir/Observation"
    assert seen[0][0] == "patient=p+1&_lastUpdated=ge2026-01-01T00:00:00%2B01:00"
    assert seen[1][0] == "_getpages=a%2Bb%3D&_offset=2"
    assert seen[0][1:] == (USER_AGENT, "application/fhir+json")
    assert len(seen) == 2  # the redirect was not followed


def test_no_answer_says_whether_the_source_timed_out() -> None:
    """A source that accepts the connection and never answers times out (``sock_read``); a
    port nobody listens on is a network failure. Both are counted as the source's."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()

    async def run() -> list[NoAnswer]:
        http = SourceHttp(connections=4, timeout=httpx.Timeout(0.3, connect=2))
        client = http.source("sandbox-lab")
        failures = []
        try:
            for port in (silent.getsockname()[1], closed_port):
                with pytest.raises(NoAnswer) as caught:
                    await client.get(
                        f"http://127.0.0.1:{port}/fhir/Patient", params=None, headers={}
                    )
                failures.append(caught.value)
        finally:
            await http.aclose()
        return failures

    before = {o: _count("sandbox-lab", o) for o in ("timeout", "network")}
    try:
        timed_out, refused = asyncio.run(run())
    finally:
        silent.close()
    assert timed_out.timed_out and str(timed_out) == "timed out"
    assert not refused.timed_out and str(refused) == "ClientConnectorError"
    assert _count("sandbox-lab", "timeout") == before["timeout"] + 1
    assert _count("sandbox-lab", "network") == before["network"] + 1


def _count(source: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tether_source_requests_total", {"source": source, "outcome": outcome}
    )
    return value or 0.0


def test_the_environments_proxy_carries_a_sources_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``HTTP_PROXY`` is honoured as httpx honours it (``NO_PROXY`` too), looked up once per
    origin: the proxy sees the absolute-form request for the source's host."""
    seen: list[bytes] = []

    async def run() -> tuple[int, int]:
        async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        proxy_for.cache_clear()
        try:
            async with server, source_http() as http:
                client = http.source("sandbox-clinic")
                via = await client.get(
                    "http://fhir.example.test/r4/Patient", params={"_id": "p1"}, headers={}
                )
                with pytest.raises(NoAnswer):  # NO_PROXY: straight to a closed port
                    await client.get(f"http://127.0.0.1:{port + 1}/r4", params=None, headers={})
                return via.status, len(seen)
        finally:
            proxy_for.cache_clear()

    status, proxied = asyncio.run(run())
    assert status == 204
    assert proxied == 1
    assert seen[0] == b"GET http://fhir.example.test/r4/Patient?_id=p1 HTTP/1.1"
