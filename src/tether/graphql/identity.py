"""The identity fields of the health SDK's interface (its ``unauthedApiUrl`` calls).

``initSdk`` answers null (the SDK keeps its defaults, telemetry off); ``getToken`` and
``refresh`` are served by :mod:`tether.identity.sdk_tokens`; the credential kinds tether does
not offer — email/password, authorization code, guest — answer a ``not-supported``
OperationOutcome naming the one that works.
"""

from __future__ import annotations

from enum import Enum

import strawberry

from tether.graphql.context import Context
from tether.graphql.errors import NotSupported
from tether.identity import sdk_tokens

Info = strawberry.Info[Context, None]

USE_GET_TOKEN = "authenticate with a tether member token instead (getToken)"


@strawberry.type
class JwtHolder:
    jwt_token: str


@strawberry.type
class OpaqueToken:
    token: str


@strawberry.type(description="getToken: the SDK's token set.")
class LoginTokens:
    access_token: JwtHolder = strawberry.field(description="a tether member token (HS256 JWT)")
    id_token: JwtHolder = strawberry.field(description="HS256 JWT: sub the member, tid the tenant")
    refresh_token: OpaqueToken = strawberry.field(description="opaque; send as refresh_token")


@strawberry.type(description="refresh: a new access token and id token (no new refresh token).")
class RefreshedTokens:
    access_token: str
    id_token: str


@strawberry.type
class GuestTokens:
    access_token: str
    refresh_token: str
    identity_token: str
    token_type: str
    issued_at: float
    expires_in: float


@strawberry.enum
class LogLevel(Enum):
    DEBUG = "DEBUG"
    ERROR = "ERROR"
    INFO = "INFO"
    VERBOSE = "VERBOSE"
    WARN = "WARN"


@strawberry.type
class RemoteRetry:
    interval: int
    attempts: int


@strawberry.type
class RemoteHttpConfig:
    request_timeout: int | None
    retry: RemoteRetry | None


@strawberry.type
class RemoteCache:
    max_size_bytes: int


@strawberry.type
class RemoteGraphQLConfig:
    url: str = strawberry.field(description="SDK 1.70: the unauthenticated endpoint")
    auth_url: str = strawberry.field(description="SDK 1.70: the authenticated endpoint")
    api_url: str = strawberry.field(description="SDK 2.0: the one endpoint")
    fetch_policy: str
    cache: RemoteCache


@strawberry.type
class RemoteTelemetryConfig:
    enabled: bool | None
    collector_url: str


@strawberry.type(description="Remote SDK configuration; tether sends none (null).")
class SdkRemoteConfig:
    log_level: LogLevel | None
    http_client: RemoteHttpConfig | None
    graph_ql_client: RemoteGraphQLConfig | None = strawberry.field(name="graphQLClient")
    telemetry: RemoteTelemetryConfig | None


def _login_tokens(tokens: sdk_tokens.SdkTokens) -> LoginTokens:
    assert tokens.refresh_token is not None
    return LoginTokens(
        access_token=JwtHolder(jwt_token=tokens.access_token),
        id_token=JwtHolder(jwt_token=tokens.id_token),
        refresh_token=OpaqueToken(token=tokens.refresh_token),
    )


@strawberry.type
class IdentityQuery:
    @strawberry.field(
        description="Remote SDK configuration: tether answers null (defaults, no telemetry)."
    )
    def init_sdk(self, client_key: str) -> SdkRemoteConfig | None:
        return None

    @strawberry.field(
        description="A tether member token (Authorization, raw) + ClientKey → the token set."
    )
    async def get_token(self, info: Info) -> LoginTokens | None:
        ctx = info.context
        tokens = await ctx.call(
            sdk_tokens.get_token,
            ctx.runtime,
            member_token=ctx.header("authorization"),
            client_key=ctx.header("clientkey"),
        )
        return _login_tokens(tokens)

    @strawberry.field(description="Email/password sign-in: not enabled on tether.")
    def login(self, email: str, password: str) -> LoginTokens | None:
        raise NotSupported(
            f"email/password sign-in is not enabled for this tenant; {USE_GET_TOKEN}",
            code="LOGIN_NOT_ENABLED",
        )

    @strawberry.field(description="Headers refresh_token and clientkey → new access/id tokens.")
    async def refresh(self, info: Info) -> RefreshedTokens | None:
        ctx = info.context
        tokens = await ctx.call(
            sdk_tokens.refresh,
            ctx.runtime,
            refresh_token=ctx.header("refresh_token"),
            client_key=ctx.header("clientkey"),
        )
        return RefreshedTokens(access_token=tokens.access_token, id_token=tokens.id_token)


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(description="Authorization-code sign-in: not enabled on tether.")
    def exchange_auth_code(self, auth_code: str) -> LoginTokens | None:
        raise NotSupported(
            f"authorization-code sign-in is not enabled for this tenant; {USE_GET_TOKEN}",
            code="AUTH_CODE_NOT_ENABLED",
        )

    @strawberry.mutation(description="Guest access: not enabled on tether.")
    def create_guest_access_token(self, client_key: str) -> GuestTokens | None:
        raise NotSupported(
            f"guest access is not enabled for this tenant; {USE_GET_TOKEN}",
            code="GUEST_ACCESS_NOT_ENABLED",
        )
