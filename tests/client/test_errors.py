"""Every SDK error, from the real server where it can produce it, else from a MockTransport
(retries, 429 and 5xx), plus the checks made before any request and ``wait_until``'s timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tests.client.fixtures import CLINIC, RETIRED
from tests.conftest import MemberCtx, TenantCtx, run_async
from tether.client import (
    AsyncConnectionManager,
    AuthenticationError,
    ConflictError,
    ConnectionManager,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TenantClient,
    TetherError,
    TimeoutError,
    ValidationError,
)
from tether.client._exceptions import parse_retry_after
from tether.testing.live_server import LiveServer, free_port

CONNECTION = {
    "id": CLINIC,
    "name": "Sandbox Community Clinic",
    "category": "OAUTH",
    "type": "CLINICAL",
    "status": "CONNECTED",
    "syncStatus": "RETRIEVING",
    "syncErrors": [],
    "created": "2026-11-27T22:50:35Z",
    "statusUpdated": "2026-11-27T22:50:35.123456Z",
    "lastSynced": None,
    "resourceCounts": {},
    "nextSync": None,
}


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that answers ``answers`` in order (the last one again and again)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return httpx.MockTransport(handle), seen


def problem(status: int, **headers: str) -> httpx.Response:
    body = {"type": "urn:tether:problem:x", "title": "x", "status": status, "detail": f"d{status}"}
    return httpx.Response(
        status, json=body, headers={"content-type": "application/problem+json", **headers}
    )


def mocked(*answers: httpx.Response, **options: float) -> tuple[ConnectionManager, list]:
    transport, seen = scripted(*answers)
    options.setdefault("backoff", 0.001)
    return ConnectionManager("http://tether.test", "tok", transport=transport, **options), seen


# ---------------------------------------------------------------- from the real server
def test_a_bad_token_is_an_authentication_error(server: LiveServer) -> None:
    tether = ConnectionManager(server.url, "not-a-token")
    with tether, pytest.raises(AuthenticationError) as caught:
        tether.get_member_connections()
    err = caught.value
    assert err.status == 401 and err.type == "urn:tether:problem:unauthenticated"
    assert err.request_id and err.problem["requestId"] == err.request_id
    assert err.request_id in str(err) and "HTTP 401" in str(err)


def test_the_wrong_kind_of_credential_is_an_authentication_error(
    server: LiveServer, member: MemberCtx, tenant: TenantCtx
) -> None:
    with TenantClient(server.url, member.token) as wrong, pytest.raises(AuthenticationError) as a:
        wrong.list_members()
    also_wrong = ConnectionManager(server.url, tenant.api_key)
    with also_wrong, pytest.raises(AuthenticationError) as b:
        # Listing connections with the API key is the tenant's view (GET /v1/connections);
        # starting a member's OAuth flow is the member's alone.
        also_wrong.get_oauth_url("sandbox-clinic")
    assert a.value.status == b.value.status == 403
    assert "API key" in a.value.detail and "member token" in b.value.detail


def test_unknown_connection_and_source_are_not_found(sdk: ConnectionManager) -> None:
    with pytest.raises(NotFoundError) as conn:
        sdk.get_connection(CLINIC)
    with pytest.raises(NotFoundError) as source:
        sdk.get_data_source("no-such-source")
    with pytest.raises(NotFoundError):
        sdk.disconnect_connection(CLINIC)
    assert (conn.value.status, conn.value.code) == (404, "UNKNOWN_CONNECTION")
    assert source.value.code == "UNKNOWN_DATA_SOURCE"


def test_a_retired_source_is_a_conflict(sdk: ConnectionManager) -> None:
    assert sdk.get_data_source(RETIRED).retired is True
    with pytest.raises(ConflictError) as caught:
        sdk.get_oauth_url(RETIRED)
    assert (caught.value.status, caught.value.code) == (409, "ACCESS_ENDED")


def test_bad_filters_are_validation_errors_from_the_server(
    sdk: ConnectionManager, client: httpx.Client, member: MemberCtx
) -> None:
    with pytest.raises(ValidationError) as schema:
        sdk.search_data_sources(limit=0)
    assert schema.value.status == 422
    assert [e["location"] for e in schema.value.errors] == ["query.limit"]
    with pytest.raises(ValidationError) as refused:
        sdk.search_data_sources(near="nowhere")
    assert refused.value.status == 400 and "ZIP" in refused.value.detail
    # An unknown enum value is caught before the request; the server would refuse it too.
    with pytest.raises(ValidationError) as local:
        sdk.get_member_connections(status=["CONNECTED", "BOGUS"])
    assert local.value.status is None and "CONNECTED" in local.value.detail
    raw = client.get("/v1/connections", params={"status": "BOGUS"}, headers=member.headers)
    assert raw.status_code == 422


def test_a_closed_port_is_a_network_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    tether = ConnectionManager(url, "tok", retries=1, backoff=0.001)
    with tether, pytest.raises(NetworkError) as caught:
        tether.get_member_connections()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.status is None and "GET /v1/connections" in caught.value.detail


def test_the_async_client_maps_errors_the_same_way(server: LiveServer, member: MemberCtx) -> None:
    async def run() -> list[TetherError]:
        errors: list[TetherError] = []
        async with AsyncConnectionManager(server.url, member.token) as tether:
            for call in (
                lambda: tether.get_connection(CLINIC),
                lambda: tether.get_oauth_url(RETIRED),
                lambda: tether.search_data_sources(limit=0),
            ):
                try:
                    await call()
                except TetherError as exc:
                    errors.append(exc)
        url = f"http://127.0.0.1:{free_port()}"
        async with AsyncConnectionManager(url, "tok", retries=0) as closed:
            try:
                await closed.get_member_connections()
            except TetherError as exc:
                errors.append(exc)
        return errors

    kinds = [type(e) for e in run_async(run())]
    assert kinds == [NotFoundError, ConflictError, ValidationError, NetworkError]


# ---------------------------------------------------------------- before any request
@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.get_connection(""),
        lambda t: t.get_connection("Sandbox Clinic"),
        lambda t: t.get_connection("../members"),
        lambda t: t.get_oauth_url("-clinic"),
        lambda t: t.delete_connection("x" * 101),
        lambda t: t.disconnect_connection(None),
        lambda t: t.get_data_source("clinic/"),
        lambda t: t.get_member_connections(sync_status="DONE"),
        lambda t: t.get_member_connections(type=["LAB", "SPA"]),
        lambda t: t.get_health_records("observation"),
        lambda t: t.get_health_records("Observation", connection_id="A"),
    ],
)
def test_malformed_input_fails_before_any_request(call: Callable) -> None:
    tether, seen = mocked(httpx.Response(200, json=[]))
    with pytest.raises(ValidationError) as caught:
        call(tether)
    assert seen == [] and caught.value.status is None
    assert caught.value.type == "urn:tether:problem:validation-error"


def test_the_connection_id_pattern_is_the_directory_slug_pattern() -> None:
    from tether.client._validation import CONNECTION_ID_PATTERN
    from tether.directory.schema import SLUG_PATTERN

    assert CONNECTION_ID_PATTERN == SLUG_PATTERN


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValidationError):
        ConnectionManager("http://tether.test", " ")


# ---------------------------------------------------------------- retries (mocked)
def test_idempotent_calls_are_retried_on_503_with_one_request_id() -> None:
    tether, seen = mocked(problem(503), problem(503), httpx.Response(200, json=[CONNECTION]))
    [conn] = tether.get_member_connections()
    assert conn.id == CLINIC and len(seen) == 3
    assert len({r.headers["x-request-id"] for r in seen}) == 1
    assert seen[0].headers["authorization"] == "Bearer tok"


def test_retries_end_with_the_last_error() -> None:
    tether, seen = mocked(problem(502), retries=2)
    with pytest.raises(ServerError) as caught:
        tether.disconnect_connection(CLINIC)  # idempotent: retried
    assert len(seen) == 3 and caught.value.status == 502
    none, seen = mocked(problem(504), retries=0)
    with pytest.raises(ServerError):
        none.get_connection(CLINIC)
    assert len(seen) == 1


def test_get_oauth_url_is_never_retried() -> None:
    tether, seen = mocked(problem(503), httpx.Response(200, json={"redirectUrl": "x"}))
    with pytest.raises(ServerError):
        tether.get_oauth_url(CLINIC)
    assert len(seen) == 1
    transport = httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow")))
    flaky = ConnectionManager("http://tether.test", "t", transport=transport)
    with flaky, pytest.raises(NetworkError) as caught:
        flaky.get_oauth_url(CLINIC)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_other_errors_are_not_retried() -> None:
    for status, kind in ((500, ServerError), (404, NotFoundError), (409, ConflictError)):
        tether, seen = mocked(problem(status))
        with pytest.raises(kind):
            tether.get_connection(CLINIC)
        assert len(seen) == 1


def test_network_errors_are_retried_on_idempotent_calls() -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=CONNECTION)

    tether = ConnectionManager("http://tether.test", "t", transport=httpx.MockTransport(handle))
    assert tether.get_connection(CLINIC).id == CLINIC and len(calls) == 2


def test_429_waits_for_retry_after() -> None:
    tether, seen = mocked(problem(429, **{"retry-after": "0.3"}), httpx.Response(200, json=[]))
    started = time.monotonic()
    assert tether.get_member_connections() == []
    assert time.monotonic() - started >= 0.3 and len(seen) == 2


def test_a_long_retry_after_is_a_rate_limit_error_at_once() -> None:
    tether, seen = mocked(problem(429, **{"retry-after": "120"}))
    with pytest.raises(RateLimitError) as caught:
        tether.get_member_connections()
    assert caught.value.retry_after == 120 and len(seen) == 1


def test_retry_after_may_be_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 < (parse_retry_after(format_datetime(later, usegmt=True)) or 0) <= 30
    assert parse_retry_after("soon") is None and parse_retry_after("-3") == 0


def test_the_async_client_retries_too() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return problem(503) if len(seen) == 1 else httpx.Response(200, json=CONNECTION)

    async def run() -> str:
        transport = httpx.MockTransport(handle)
        async with AsyncConnectionManager(
            "http://tether.test", "t", transport=transport, backoff=0.001
        ) as tether:
            return (await tether.sync_now(CLINIC)).id

    assert run_async(run()) == CLINIC and len(seen) == 2


def test_an_answer_that_is_not_a_problem_document_still_maps() -> None:
    html = httpx.Response(502, text="<html>Bad gateway</html>")
    tether, _ = mocked(html, retries=0)
    with pytest.raises(ServerError) as caught:
        tether.get_connection(CLINIC)
    assert caught.value.status == 502 and "Bad gateway" in caught.value.detail


def test_an_unreadable_success_is_a_tether_error() -> None:
    tether, _ = mocked(httpx.Response(200, json={"id": CLINIC}))
    with pytest.raises(TetherError) as caught:
        tether.get_connection(CLINIC)
    assert type(caught.value) is TetherError and "cannot read" in caught.value.detail


# ---------------------------------------------------------------- wait_until
def test_wait_until_times_out_with_the_last_state() -> None:
    tether, seen = mocked(httpx.Response(200, json=CONNECTION))
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        tether.wait_until(
            CLINIC, lambda c: c.sync_status == "RETRIEVED", timeout=0.3, interval=0.05
        )
    assert 0.3 <= time.monotonic() - started < 2 and len(seen) >= 3
    assert isinstance(caught.value, TetherError)
    last = caught.value.last
    assert last is not None and last.sync_status == "RETRIEVING"
    assert last.status_updated == datetime(2026, 11, 27, 22, 50, 35, 123456, tzinfo=UTC)


def test_wait_until_on_a_missing_connection(sdk: ConnectionManager) -> None:
    with pytest.raises(NotFoundError):
        sdk.wait_until(CLINIC, lambda c: True, timeout=1, interval=0.05)
    with pytest.raises(TimeoutError) as caught:
        sdk.wait_until(CLINIC, lambda c: True, timeout=0.2, interval=0.05, missing_ok=True)
    assert caught.value.last is None and "no such connection" in str(caught.value)


def test_problem_documents_are_kept_whole() -> None:
    body = {
        "type": "urn:tether:problem:conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "data being deleted",
        "code": "DELETION_IN_PROGRESS",
        "requestId": "r1",
    }
    tether, _ = mocked(httpx.Response(409, content=json.dumps(body)))
    with pytest.raises(ConflictError) as caught:
        tether.get_oauth_url(CLINIC)
    assert caught.value.problem == body and caught.value.request_id == "r1"
    assert caught.value.code == "DELETION_IN_PROGRESS"
