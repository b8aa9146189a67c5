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

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response

from tether.errors import PageError
from tether.fhir.paging import UNKNOWN, PageReader, next_link_ahead
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


def reader(http: httpx.AsyncClient, base: str) -> PageReader:
    """A reader that sends every request on ``http`` (no budget)."""

    @asynccontextmanager
    async def slot() -> AsyncIterator[httpx.AsyncClient]:
        yield http

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

    async with httpx.AsyncClient() as http:
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

        async with httpx.AsyncClient() as http:
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
    collector gets round to it (httpx's response and its bound stream refer to each other)."""
    _, base = source

    async def run() -> bytes:
        async with httpx.AsyncClient() as http:
            return await reader(http, base).get(f"{base}/Observation?page=1")

    gc.collect()
    gc.disable()
    try:
        body = asyncio.run(run())
        left = [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
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
    from tether.sync.context import _Shard

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
        shard = _Shard(2, httpx.Timeout(10))
        try:
            client = shard.client("sandbox-clinic")
            for member in ("a", "b"):
                response = await client.get(f"{live.url}/fhir/Patient?member={member}")
                assert response.headers["set-cookie"].startswith("session=member-a")
            assert len(client.cookies.jar) == 0
        finally:
            await shard.pool.aclose()

    try:
        asyncio.run(twice())
    finally:
        live.stop()
    assert cookies_seen == [None, None]
