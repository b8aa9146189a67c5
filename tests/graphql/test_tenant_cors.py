"""GraphQL CORS also allows the browser origins live tenants register (``PATCH /v1/tenant``);
a disabled tenant's origins stop being allowed."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.conftest import TenantCtx, run_async
from tether.accounts import tenants
from tether.graphql import GRAPHQL_PATH, GraphQLCORSMiddleware, cors_options
from tether.graphql import cors as cors_module
from tether.runtime import Runtime


def test_tenant_origins_are_allowed_while_the_tenant_is_live(
    runtime: Runtime, tenant: TenantCtx
) -> None:
    tenants.update_tenant(
        runtime,
        tenant_id=tenant.tenant_id,
        actor="test",
        allowed_origins=["https://app.example.test", "capacitor://localhost"],
    )
    restricted = runtime.settings.model_copy(update={"graphql_cors_origins": ["https://a.test"]})
    app = Starlette(routes=[Route(GRAPHQL_PATH, lambda _: PlainTextResponse("ok"))])
    middleware = GraphQLCORSMiddleware(app, **cors_options(restricted, runtime))
    transport = httpx.ASGITransport(app=middleware)

    async def preflight(origin: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://tether") as http:
            headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
            return await http.options(GRAPHQL_PATH, headers=headers)

    for origin in ("https://a.test", "https://app.example.test", "capacitor://localhost"):
        allowed = run_async(preflight(origin))
        assert allowed.status_code == 200, origin
        assert allowed.headers["access-control-allow-origin"] == origin
    other = run_async(preflight("https://evil.test"))
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers

    tenants.set_disabled(runtime, tenant_id=tenant.tenant_id, actor="test", disabled=True)
    middleware.read_at -= cors_module.TENANT_ORIGINS_TTL  # the cached read has aged out
    assert run_async(preflight("https://app.example.test")).status_code == 400
    assert run_async(preflight("https://a.test")).status_code == 200
