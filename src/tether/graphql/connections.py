"""The connection operations over GraphQL: parse, call one service function, render.

The same services as REST (``tether.api.routes.connections`` and ``data_sources``), with the
member authenticated the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, TypeVar

import strawberry

from tether.accounts.service import Principal
from tether.connections import establish, manage, queries
from tether.directory import service as directory
from tether.domain import SourceType, Status, SyncStatus
from tether.errors import InvalidRequest
from tether.graphql import basic
from tether.graphql.context import Context
from tether.graphql.types import (
    DataSource,
    MemberConnection,
    OauthUrl,
    StatusUpdate,
    SubscriptionBundle,
    SubscriptionEntry,
    SubscriptionResource,
)
from tether.runtime import Runtime

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


def _member_connections(
    runtime: Runtime,
    principal: Principal,
    status: Sequence[Status] = (),
    sync_status: Sequence[SyncStatus] = (),
    source_type: Sequence[SourceType] = (),
) -> list[MemberConnection]:
    assert principal.member_id is not None
    with runtime.db.read() as session:
        rows = queries.member_connections(
            session,
            member_id=principal.member_id,
            status=status,
            sync_status=sync_status,
            source_type=source_type,
        )
        return [MemberConnection.of(conn, source) for conn, source in rows]


def _subscription_bundle(runtime: Runtime, principal: Principal) -> SubscriptionBundle:
    assert principal.member_id is not None
    with runtime.db.read() as session:
        rows = queries.member_connections(session, member_id=principal.member_id)
        return SubscriptionBundle(
            entry=[
                SubscriptionEntry(resource=SubscriptionResource.of(conn, source))
                for conn, source in rows
            ]
        )


def _data_source(runtime: Runtime, connection_id: str) -> DataSource:
    with runtime.db.read() as session:
        return DataSource.of(directory.get_data_source(session, connection_id))


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
        principal = await info.context.member()
        statuses = _enum_filter(Status, status, "status")
        sync_statuses = _enum_filter(SyncStatus, sync_status, "syncStatus")
        types = _enum_filter(SourceType, type, "type")
        return await info.context.call(
            _member_connections, info.context.runtime, principal, statuses, sync_statuses, types
        )

    @strawberry.field(
        name="subscription_subscription",
        description="Each connection's sync errors and syncStatus (the SDK's FHIR-like view).",
    )
    async def subscription_subscription(self, info: Info) -> SubscriptionBundle | None:
        principal = await info.context.member()
        return await info.context.call(_subscription_bundle, info.context.runtime, principal)

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
        principal = await info.context.member()
        if return_url is not None and len(return_url) > MAX_RETURN_URL:
            raise InvalidRequest(f"returnUrl: at most {MAX_RETURN_URL} characters")
        url = await info.context.call(
            establish.get_oauth_url, info.context.runtime, principal, connection_id, return_url
        )
        return OauthUrl(redirect_url=url)

    @strawberry.field(description="getDataSource: one entry of the data-source directory.")
    async def get_data_source(self, info: Info, connection_id: str) -> DataSource:
        await info.context.caller()  # a member token or the tenant's API key, as in REST
        return await info.context.call(_data_source, info.context.runtime, connection_id)


@strawberry.type
class ConnectionMutation:
    @strawberry.mutation(
        description="disconnectConnection: stop retrieval, revoke the tokens, keep the data."
    )
    async def disconnect_connection(self, info: Info, connection_id: str) -> StatusUpdate:
        principal = await info.context.member()
        update = await info.context.call(
            manage.disconnect, info.context.runtime, principal, connection_id
        )
        return StatusUpdate.of(update)

    @strawberry.mutation(
        description="deleteConnection: revoke the tokens now, delete the data asynchronously."
    )
    async def delete_connection(self, info: Info, connection_id: str) -> StatusUpdate:
        principal = await info.context.member()
        update = await info.context.call(
            manage.delete_connection, info.context.runtime, principal, connection_id
        )
        return StatusUpdate.of(update)

    @strawberry.mutation(
        description="createConnection: connect a BASIC (username/password) source. "
        "Not supported yet: answers a not-supported error."
    )
    async def create_connection(
        self, info: Info, connection_id: str, username: str, password: str
    ) -> MemberConnection:
        principal = await info.context.member()
        return await info.context.call(
            basic.create_connection,
            info.context.runtime,
            principal,
            connection_id,
            username,
            password,
        )
