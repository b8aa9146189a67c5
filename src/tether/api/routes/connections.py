"""getMemberConnections, one connection, createConnection, getOauthUrl, sync now, disconnect
and delete (member token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tether.api.schemas import (
    CreateConnectionIn,
    MemberConnectionOut,
    OauthUrlIn,
    OauthUrlOut,
    StatusUpdateOut,
    SyncRunOut,
    TenantConnectionOut,
    TenantConnectionPage,
)
from tether.audit import MAX_CURSOR
from tether.connections import establish
from tether.connections.basic_sources import create_connection as create_basic_connection
from tether.connections.deletion import delete_connection as delete_member_connection
from tether.connections.disconnect import disconnect
from tether.connections.views import (
    MAX_TENANT_PAGE,
    member_connection,
    member_connections,
    tenant_connections,
)
from tether.domain import SourceType, Status, SyncStatus
from tether.errors import InvalidRequest
from tether.http.deps import AnyCaller, MemberCaller, RuntimeDep
from tether.http.openapi import problems
from tether.identity.principals import TenantPrincipal
from tether.sync.history import connection_syncs
from tether.sync.scheduling import request_sync

router = APIRouter(prefix="/v1/connections", tags=["connections"])


@router.get(
    "",
    response_model=list[MemberConnectionOut] | TenantConnectionPage,
    summary="getMemberConnections (member token) or the tenant's connections (API key)",
    responses=problems(400),
    description="With a member token: the member's own connections (a list). With the tenant's "
    "API key: every member's connections, keyset-paged (`after`, `limit`, `nextAfter`), each "
    "with `memberId` and `externalId`, filtered by `memberId`, `externalId`, `connectionId`, "
    "`status`, `syncStatus` and `syncError` (a sync error code). The tenant-only filters "
    "answer 400 with a member token.",
)
def get_member_connections(
    caller: AnyCaller,
    runtime: RuntimeDep,
    status: Annotated[list[Status] | None, Query()] = None,
    sync_status: Annotated[list[SyncStatus] | None, Query(alias="syncStatus")] = None,
    type: Annotated[list[SourceType] | None, Query()] = None,
    member_id: Annotated[str | None, Query(alias="memberId", max_length=40)] = None,
    external_id: Annotated[str | None, Query(alias="externalId", max_length=200)] = None,
    connection_id: Annotated[str | None, Query(alias="connectionId", max_length=100)] = None,
    sync_error: Annotated[
        str | None, Query(alias="syncError", pattern=r"^[A-Z][A-Z_]{0,59}$")
    ] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TENANT_PAGE)] = 50,
) -> list[MemberConnectionOut] | TenantConnectionPage:
    if isinstance(caller, TenantPrincipal):
        page = tenant_connections(
            runtime,
            tenant=caller,
            status=status or (),
            sync_status=sync_status or (),
            sync_error=sync_error,
            source=connection_id,
            member_id=member_id,
            external_id=external_id,
            after=after,
            limit=limit,
        )
        return TenantConnectionPage(
            items=[TenantConnectionOut.of_tenant(item) for item in page.items],
            next_after=page.next_after,
        )
    tenant_only = (member_id, external_id, connection_id, sync_error, after)
    if any(value is not None for value in tenant_only):
        raise InvalidRequest(
            "memberId, externalId, connectionId, syncError and after filter the tenant's "
            "list: send the API key",
            code="TENANT_ONLY_FILTER",
        )
    views = member_connections(
        runtime,
        member=caller,
        status=status or (),
        sync_status=sync_status or (),
        source_type=type or (),
    )
    return [MemberConnectionOut.of(view) for view in views]


@router.post(
    "",
    response_model=MemberConnectionOut,
    status_code=201,
    summary="createConnection: connect a BASIC source with the member's portal credentials",
    responses=problems(400, 404, 409, 502),
)
def create_connection(
    body: CreateConnectionIn, member: MemberCaller, runtime: RuntimeDep
) -> MemberConnectionOut:
    view = create_basic_connection(
        runtime,
        member=member,
        connection_id=body.connection_id,
        username=body.username,
        password=body.password.get_secret_value(),
    )
    return MemberConnectionOut.of(view)


@router.get("/{connection_id}", response_model=MemberConnectionOut, summary="One connection")
def get_connection(
    connection_id: str, member: MemberCaller, runtime: RuntimeDep
) -> MemberConnectionOut:
    return MemberConnectionOut.of(
        member_connection(runtime, member=member, connection_id=connection_id)
    )


@router.post(
    "/{connection_id}/oauth-url",
    response_model=OauthUrlOut,
    summary="getOauthUrl",
    responses=problems(400, 409),
)
def get_oauth_url(
    connection_id: str,
    member: MemberCaller,
    runtime: RuntimeDep,
    body: OauthUrlIn | None = None,
) -> OauthUrlOut:
    url = establish.get_oauth_url(
        runtime,
        member=member,
        connection_id=connection_id,
        return_url=body.return_url if body else None,
    )
    return OauthUrlOut(redirect_url=url)


@router.post(
    "/{connection_id}/sync",
    response_model=MemberConnectionOut,
    status_code=202,
    summary="Sync now (asynchronous: poll the connection's syncStatus)",
    responses=problems(409),
)
def sync_now(connection_id: str, member: MemberCaller, runtime: RuntimeDep) -> MemberConnectionOut:
    request_sync(runtime, member=member, connection_id=connection_id)
    return MemberConnectionOut.of(
        member_connection(runtime, member=member, connection_id=connection_id)
    )


@router.post(
    "/{connection_id}/disconnect",
    response_model=StatusUpdateOut,
    summary="disconnectConnection: stop retrieval, revoke tokens, keep the data",
    responses=problems(409),
)
def disconnect_connection(
    connection_id: str, member: MemberCaller, runtime: RuntimeDep
) -> StatusUpdateOut:
    return StatusUpdateOut.of(disconnect(runtime, member=member, connection_id=connection_id))


@router.delete(
    "/{connection_id}",
    response_model=StatusUpdateOut,
    status_code=202,
    summary="deleteConnection: revoke tokens now, delete the data asynchronously",
    responses=problems(409),
)
def delete_connection(
    connection_id: str, member: MemberCaller, runtime: RuntimeDep
) -> StatusUpdateOut:
    return StatusUpdateOut.of(
        delete_member_connection(runtime, member=member, connection_id=connection_id)
    )


@router.get(
    "/{connection_id}/syncs",
    response_model=list[SyncRunOut],
    summary="The connection's sync history, newest first (the last 100 runs)",
)
def list_syncs(
    connection_id: str,
    member: MemberCaller,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> list[SyncRunOut]:
    runs = connection_syncs(runtime, member=member, connection_id=connection_id, limit=limit)
    return [SyncRunOut.of(run) for run in runs]
