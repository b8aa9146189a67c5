"""getToken and refresh for the SDK's client: clientKey, token shapes, and what stops them."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.conftest import MemberCtx, make_member, make_tenant, run_async
from tests.graphql.sdk_wire import SdkClient, client_key, jwt_payload
from tether.accounts import members
from tether.errors import AuthenticationRequired, InvalidRequest
from tether.graphql import GRAPHQL_PATH, GraphQLCORSMiddleware, cors_options
from tether.identity import api_keys, sdk_tokens
from tether.identity.credentials import authenticate
from tether.identity.liveness import KEY_REVOKED
from tether.ids import sha256_hex
from tether.runtime import Runtime
from tether.settings import Settings
from tether.store.models import SdkRefreshToken, Tenant, utcnow


def _sdk(client: httpx.Client, member: MemberCtx) -> SdkClient:
    sdk = SdkClient(client, client_key(member.tenant.tenant_id))
    assert not sdk.authenticate_token(member.token).errors
    return sdk


def test_client_key_round_trip_and_defects() -> None:
    key = sdk_tokens.client_key_for("ten_1")
    assert sdk_tokens.parse_client_key(key) == sdk_tokens.ClientKey("tether", "ten_1")
    urlsafe = key.rstrip("=").replace("+", "-").replace("/", "_")
    assert sdk_tokens.parse_client_key(urlsafe).tenant_id == "ten_1"
    assert sdk_tokens.parse_client_key(client_key("ten_1", env="sandbox")).env == "sandbox"
    with pytest.raises(AuthenticationRequired):
        sdk_tokens.parse_client_key(None)
    for bad in ("%%%", "bm90IGpzb24=", "WzFd", client_key("")):  # not b64, not JSON, a list
        with pytest.raises(InvalidRequest):
            sdk_tokens.parse_client_key(bad)


def test_get_token_hands_out_working_tokens(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    sdk = SdkClient(client, client_key(member.tenant.tenant_id))
    answer = sdk.authenticate_token(member.token)
    assert answer.data is not None
    tokens = answer.data["getToken"]
    access = jwt_payload(tokens["accessToken"]["jwtToken"])
    assert access["sub"] == member.member_id and isinstance(access["exp"], int)
    assert tokens["accessToken"]["jwtToken"] != member.token  # a fresh member token
    claims = sdk_tokens.verify_id_token(
        tokens["idToken"]["jwtToken"], secret_key=runtime.secret_key
    )
    assert claims["sub"] == member.member_id and claims["tid"] == member.tenant.tenant_id
    assert claims["aud"] == sdk_tokens.ID_TOKEN_AUDIENCE
    # The id token is not a member token: it opens nothing.
    with pytest.raises(AuthenticationRequired):
        authenticate(runtime, tokens["idToken"]["jwtToken"])
    # Authed calls with the access token work like REST's with a member token.
    assert sdk.connections().data == {
        "getMemberConnections": [],
        "subscription_subscription": {"entry": []},
    }
    rest = client.get("/v1/connections", headers={"Authorization": f"Bearer {sdk.access_token}"})
    assert rest.status_code == 200
    # The refresh token is stored only as its hash, bound to the member and tenant.
    refresh = tokens["refreshToken"]["token"]
    with runtime.db.read() as session:
        rows = session.scalars(select(SdkRefreshToken)).all()
    assert len(rows) == 1 and rows[0].token_hash == sha256_hex(refresh)
    assert (rows[0].member_id, rows[0].tenant_id) == (member.member_id, member.tenant.tenant_id)
    ttl = timedelta(seconds=runtime.settings.sdk_refresh_ttl)
    assert abs(rows[0].expires_at - (utcnow() + ttl)) < timedelta(minutes=1)
    assert rows[0].api_key_id is None  # the fixture's token is the operator's
    assert refresh not in {rows[0].token_hash, str(rows[0].id)}


def test_get_token_refusals(client: httpx.Client, member: MemberCtx, runtime: Runtime) -> None:
    mine = client_key(member.tenant.tenant_id)
    other = make_member(runtime, make_tenant(runtime, "Other App"), "carol")
    sdk = SdkClient(client, mine)

    def get_token(**headers: str) -> str:
        answer = sdk.send("getToken", headers=headers)
        assert answer.data == {"getToken": None}
        return answer.code

    assert get_token(Authorization=member.token) == "CLIENT_KEY_MISSING"
    assert get_token(Authorization=member.token, ClientKey="%%") == "CLIENT_KEY_INVALID"
    assert get_token(ClientKey=mine) == "TOKEN_MISSING"
    assert get_token(Authorization=other.token, ClientKey=mine) == "CLIENT_KEY_MISMATCH"
    assert get_token(Authorization="garbage", ClientKey=mine) == "UNAUTHENTICATED"
    assert get_token(Authorization=member.tenant.api_key, ClientKey=mine) == "FORBIDDEN"
    # "Bearer " in front is tolerated.
    assert not sdk.send(
        "getToken", headers={"Authorization": f"Bearer {member.token}", "ClientKey": mine}
    ).errors


def test_refresh_keeps_the_refresh_token_and_renews_the_rest(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    sdk = _sdk(client, member)
    first_access, refresh = sdk.access_token, sdk.refresh_token
    for _ in range(2):  # not rotated: the same refresh token keeps working
        answer = sdk.refresh()
        assert answer.data is not None and not answer.errors
        assert sdk.refresh_token == refresh
        assert jwt_payload(answer.data["refresh"]["idToken"])["sub"] == member.member_id
    assert sdk.access_token != first_access
    assert sdk.connections().data is not None
    with runtime.db.read() as session:
        row = session.scalars(select(SdkRefreshToken)).one()
    assert row.last_used_at is not None

    wrong_tenant = sdk.send(
        "refresh",
        headers={"refresh_token": refresh or "", "clientkey": client_key("ten_other")},
    )
    assert wrong_tenant.code == "CLIENT_KEY_MISMATCH"
    unknown = sdk.send(
        "refresh", headers={"refresh_token": "trt_nope", "clientkey": sdk.client_key}
    )
    assert unknown.code == "REFRESH_TOKEN_INVALID" and unknown.issue_code == "login"
    missing = sdk.send("refresh", headers={"clientkey": sdk.client_key})
    assert missing.code == "REFRESH_TOKEN_MISSING"


def test_expired_or_revoked_refresh_tokens_stop(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    sdk = _sdk(client, member)
    real_clock = runtime.clock
    ttl = runtime.settings.sdk_refresh_ttl
    runtime.clock = lambda: real_clock() + timedelta(seconds=ttl + 1)
    try:
        assert sdk.refresh().code == "REFRESH_TOKEN_EXPIRED"
    finally:
        runtime.clock = real_clock
    assert not sdk.refresh().errors
    with runtime.db.write() as session:
        assert (
            sdk_tokens.revoke_refresh_tokens(session, member_id=member.member_id, now=utcnow()) == 1
        )
    assert sdk.refresh().code == "REFRESH_TOKEN_INVALID"


def test_the_sweep_purges_expired_refresh_tokens(
    client: httpx.Client, member: MemberCtx, other_member: MemberCtx, runtime: Runtime
) -> None:
    """Expired refresh tokens are deleted by the periodic ``sdk-refresh-tokens`` sweep; live
    ones stay (before the sweep existed, nothing deleted them and the table only grew)."""
    old = _sdk(client, member)
    real_clock = runtime.clock
    later = real_clock() + timedelta(seconds=runtime.settings.sdk_refresh_ttl + 1)
    runtime.clock = lambda: later
    try:
        young = _sdk(client, other_member)  # issued "later": still live then
        assert runtime.jobs is not None
        swept = runtime.jobs.run_sweeps()
    finally:
        runtime.clock = real_clock
    assert swept["sdk-refresh-tokens"] == 1
    with runtime.db.read() as session:
        left = session.scalars(select(SdkRefreshToken)).all()
    assert [row.member_id for row in left] == [other_member.member_id]
    assert old.refresh().code == "REFRESH_TOKEN_INVALID"
    assert not young.refresh().errors


def test_a_disabled_member_or_tenant_stops_everything(
    client: httpx.Client, member: MemberCtx, other_member: MemberCtx, runtime: Runtime
) -> None:
    sdk, others = _sdk(client, member), _sdk(client, other_member)
    with runtime.db.write() as session:
        members.disable_member(
            session, member_id=member.member_id, tenant_id=member.tenant.tenant_id
        )
    assert sdk.refresh().code == "MEMBER_DISABLED"
    assert sdk.connections().code == "UNAUTHENTICATED"  # the access token stops too
    assert sdk.authenticate_token(member.token).code == "UNAUTHENTICATED"
    assert not others.refresh().errors
    with runtime.db.write() as session:
        tenant = session.get(Tenant, member.tenant.tenant_id)
        assert tenant is not None
        tenant.disabled_at = utcnow()
    assert others.refresh().code == "TENANT_DISABLED"
    assert others.connections().code == "UNAUTHENTICATED"


def test_revoking_the_api_key_stops_the_sdk_tokens_derived_from_its_member_token(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    key_id = member.tenant.api_key.split("_")[1]
    minted = client.post(f"/v1/members/{member.member_id}/tokens", headers=member.tenant.headers)
    assert minted.status_code == 201
    sdk = SdkClient(client, client_key(member.tenant.tenant_id))
    assert not sdk.authenticate_token(minted.json()["token"]).errors
    operators = _sdk(client, member)  # from the operator's token: bound to no key
    assert sdk.access_token and jwt_payload(sdk.access_token)["kid"] == key_id
    assert operators.access_token and "kid" not in jwt_payload(operators.access_token)
    with runtime.db.read() as session:
        rows = session.scalars(select(SdkRefreshToken).order_by(SdkRefreshToken.id)).all()
    assert [row.api_key_id for row in rows] == [key_id, None]
    # A refresh keeps the key binding in the new access token.
    assert not sdk.refresh().errors
    assert jwt_payload(sdk.access_token)["kid"] == key_id
    assert not sdk.connections().errors

    with runtime.db.write() as session:
        api_keys.revoke_api_key(session, key_id=key_id)

    stopped = sdk.refresh()
    assert stopped.data == {"refresh": None}
    assert stopped.code == "API_KEY_REVOKED" and stopped.issue_code == "login"
    assert stopped.error["message"] == KEY_REVOKED
    assert sdk.connections().code == "UNAUTHENTICATED"  # the refreshed access token too
    # What the operator minted is not the key's: it keeps working until it expires.
    assert not operators.refresh().errors
    assert not operators.connections().errors


def test_settings_drive_cors_origins_and_the_refresh_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_GRAPHQL_CORS_ORIGINS", "https://a.test,https://b.test")
    monkeypatch.setenv("TETHER_SDK_REFRESH_TTL", "7200")
    settings = Settings()
    assert settings.graphql_cors_origins == ["https://a.test", "https://b.test"]
    assert settings.sdk_refresh_ttl == 7200
    assert cors_options(settings)["origins"] == ["https://a.test", "https://b.test"]
    # Spaces and a trailing slash are forgiven (browsers never send one); "" allows none.
    monkeypatch.setenv("TETHER_GRAPHQL_CORS_ORIGINS", " https://a.test/ , capacitor://localhost")
    assert Settings().graphql_cors_origins == ["https://a.test", "capacitor://localhost"]
    monkeypatch.setenv("TETHER_GRAPHQL_CORS_ORIGINS", "")
    assert Settings().graphql_cors_origins == []
    monkeypatch.delenv("TETHER_GRAPHQL_CORS_ORIGINS")
    monkeypatch.delenv("TETHER_SDK_REFRESH_TTL")
    defaults = Settings()
    assert defaults.graphql_cors_origins == ["*"] and defaults.sdk_refresh_ttl == 30 * 86400
    for bad in ({"graphql_cors_origins": "https://a.test/path"}, {"graphql_cors_origins": "a"}):
        with pytest.raises(ValidationError):
            Settings(**bad)
    for ttl in (10, 365 * 86400):
        with pytest.raises(ValidationError):
            Settings(sdk_refresh_ttl=ttl)

    # The middleware answers only the configured origins.
    app = Starlette(routes=[Route(GRAPHQL_PATH, lambda _: PlainTextResponse("ok"))])
    restricted = Settings(graphql_cors_origins="https://a.test,https://b.test")
    transport = httpx.ASGITransport(app=GraphQLCORSMiddleware(app, **cors_options(restricted)))

    async def preflight(origin: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://tether") as http:
            headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
            return await http.options(GRAPHQL_PATH, headers=headers)

    allowed = run_async(preflight("https://b.test"))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://b.test"
    other = run_async(preflight("https://c.test"))
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
