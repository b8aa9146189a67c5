"""The connection operations over GraphQL: parse, call one service function, render.

The same services as REST (``tether.api.routes.connections`` and ``data_sources``), with the
member authenticated the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, TypeVar

import strawberry

from tether.connections import establish
from tether.connections.basic_sources import create_connection as create_basic_connection
from tether.connections.deletion import delete_connection as delete_member_connection
from tether.connections.disconnect import disconnect
from tether.connections.views import member_connections
from tether.directory import service as directory
from tether.domain import SourceType, Status, SyncStatus
from tether.errors import InvalidRequest
from tether.graphql.context import Context
from tether.graphql.types import (
    DataSource,
    MemberConnection,
    OauthUrl,
    StatusUpdate,
)

Info = strawberry.Info[Context, None]
E = TypeVar("E", bound=StrEnum)

MAX_FILTER_VALUES = 20
MAX_RETURN_URL = 2000


def _enum_filter(kind: type[E], values: Sequence[str] | None, argument: str) -> list[E]:
    """String filters (the SDK sends ``[String!]``) checked against the enumeration."""
    if not values:
        return []
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidRequest(f"{argument}: at most {MAX_FILTER_VALUES} values")
    try:
        return [kind(value) for value in values]
    except ValueError as exc:
        allowed = ", ".join(kind.__members__)
        raise InvalidRequest(
            f"{argument}: each value must be one of {allowed}", code="INVALID_FILTER"
        ) from exc


@strawberry.type
class ConnectionQuery:
    @strawberry.field(
        description="getMemberConnections: every connection of the member, filtered. "
        "integrationType is accepted (the SDK sends it) and not used."
    )
    async def get_member_connections(
        self,
        info: Info,
        integration_type: list[str] | None = None,
        status: list[str] | None = None,
        sync_status: list[str] | None = None,
        type: list[str] | None = None,
    ) -> list[MemberConnection]:
        member = await info.context.member()
        statuses = _enum_filter(Status, status, "status")
        sync_statuses = _enum_filter(SyncStatus, sync_status, "syncStatus")
        types = _enum_filter(SourceType, type, "type")
        views = await info.context.call(
            member_connections,
            info.context.runtime,
            member=member,
            status=statuses,
            sync_status=sync_statuses,
            source_type=types,
        )
        return [MemberConnection.of(view) for view in views]

    @strawberry.field(
        description="getOauthUrl: a short-lived, single-use link that starts the OAuth flow "
        "(also how an EXPIRED or DISCONNECTED connection is re-established)."
    )
    async def get_oauth_url(
        self,
        info: Info,
        connection_id: str,
        return_url: Annotated[
            str | None, strawberry.argument(description="must be on the tenant's allow-list")
        ] = None,
    ) -> OauthUrl:
        member = await info.context.member()
        if return_url is not None and len(return_url) > MAX_RETURN_URL:
            raise InvalidRequest(f"returnUrl: at most {MAX_RETURN_URL} characters")
        url = await info.context.call(
            establish.get_oauth_url,
            info.context.runtime,
            member=member,
            connection_id=connection_id,
            return_url=return_url,
        )
        return OauthUrl(redirect_url=url)

    @strawberry.field(description="getDataSource: one entry of the data-source directory.")
    async def get_data_source(self, info: Info, connection_id: str) -> DataSource:
        await info.context.caller()  # a member token or the tenant's API key, as in REST
        source = await info.context.call(
            directory.data_source, info.context.runtime, connection_id=connection_id
        )
        return DataSource.of(source)


@strawberry.type
class ConnectionMutation:
    @strawberry.mutation(
        description="disconnectConnection: stop retrieval, revoke the tokens, keep the data."
    )
    async def disconnect_connection(self, info: Info, connection_id: str) -> StatusUpdate:
        member = await info.context.member()
        update = await info.context.call(
            disconnect, info.context.runtime, member=member, connection_id=connection_id
        )
        return StatusUpdate.of(update)

    @strawberry.mutation(
        description="deleteConnection: revoke the tokens now, delete the data asynchronously."
    )
    async def delete_connection(self, info: Info, connection_id: str) -> StatusUpdate:
        member = await info.context.member()
        update = await info.context.call(
            delete_member_connection,
            info.context.runtime,
            member=member,
            connection_id=connection_id,
        )
        return StatusUpdate.of(update)

    @strawberry.mutation(
        description="createConnection: connect a BASIC (username/password) source; the "
        "credentials are checked with the source before anything is stored, never logged."
    )
    async def create_connection(
        self, info: Info, connection_id: str, username: str, password: str
    ) -> MemberConnection:
        member = await info.context.member()
        view = await info.context.call(
            create_basic_connection,
            info.context.runtime,
            member=member,
            connection_id=connection_id,
            username=username,
            password=password,
        )
        return MemberConnection.of(view)
