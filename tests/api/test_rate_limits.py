"""Rate limits: per API key, per member token and per client address, 429 problems with
Retry-After and the IETF RateLimit headers, counts shared through Redis across processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REDIS_URL, MemberCtx, TenantCtx, need_service
from tether.bootstrap import create_app, ensure_directory
from tether.runtime import Runtime
from tether.settings import Settings
from tether.testing.live_server import LiveServer, free_port


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"rate_limit_api_key": 5, "rate_limit_member": 3, "rate_limit_anonymous": 4}
    )


def test_each_credential_has_its_own_budget_and_hears_when_it_is_spent(
    client: httpx.Client, tenant: TenantCtx, member: MemberCtx
) -> None:
    first = client.get("/v1/tenant", headers=tenant.headers)
    assert first.headers["ratelimit-policy"] == '"api-key";q=5;w=60'
    assert first.headers["ratelimit"].startswith('"api-key";r=4;t=')
    for _ in range(4):
        assert client.get("/v1/tenant", headers=tenant.headers).status_code == 200
    refused = client.get("/v1/tenant", headers=tenant.headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["code"] == "RATE_LIMITED" and problem["requestId"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit"].startswith('"api-key";r=0;t=')
    # The member's budget is its own.
    mine = client.get("/v1/connections", headers=member.headers)
    assert mine.status_code == 200 and mine.headers["ratelimit"].startswith('"member";r=2;')
    # Probes and the API's description are never counted.
    for _ in range(10):
        assert client.get("/healthz").status_code == 200


def test_requests_without_a_credential_count_per_address(client: httpx.Client) -> None:
    answers = [client.get("/oauth/launch/nothing").status_code for _ in range(5)]
    assert answers[:4] == [410] * 4 and answers[4] == 429


def test_bad_tokens_spend_their_own_budget(client: httpx.Client, tenant: TenantCtx) -> None:
    bad = {"Authorization": "Bearer not-a-token"}
    assert [client.get("/v1/tenant", headers=bad).status_code for _ in range(4)] == [
        401,
        401,
        401,
        429,
    ]
    assert client.get("/v1/tenant", headers=tenant.headers).status_code == 200


@pytest.fixture
def two_servers(runtime: Runtime) -> Iterator[tuple[str, str]]:
    """Two apps (as two processes would be) sharing one Redis for their counts."""
    url = need_service(REDIS_URL, "Redis")
    runtime.settings = runtime.settings.model_copy(
        update={"rate_limit_url": url.rsplit("/", 1)[0] + f"/{uuid.uuid4().int % 15 + 1}"}
    )
    ensure_directory(runtime)
    servers = [LiveServer(create_app(runtime), port=free_port()) for _ in range(2)]
    for live in servers:
        live.start()
    try:
        yield servers[0].url, servers[1].url
    finally:
        for live in servers:
            live.stop()


def test_with_redis_every_process_shares_the_count(
    two_servers: tuple[str, str], tenant: TenantCtx
) -> None:
    a, b = two_servers
    codes = [
        httpx.get(f"{url}/v1/tenant", headers=tenant.headers).status_code
        for url in (a, b, a, b, a, b)
    ]
    assert codes == [200, 200, 200, 200, 200, 429]
