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
)
from tether.connections import establish
from tether.connections.basic_sources import create_connection as create_basic_connection
from tether.connections.deletion import delete_connection as delete_member_connection
from tether.connections.disconnect import disconnect
from tether.connections.views import member_connection, member_connections
from tether.domain import SourceType, Status, SyncStatus
from tether.http.deps import MemberCaller, RuntimeDep
from tether.sync.scheduling import request_sync

router = APIRouter(prefix="/v1/connections", tags=["connections"])


@router.get("", response_model=list[MemberConnectionOut], summary="getMemberConnections")
def get_member_connections(
    member: MemberCaller,
    runtime: RuntimeDep,
    status: Annotated[list[Status] | None, Query()] = None,
    sync_status: Annotated[list[SyncStatus] | None, Query(alias="syncStatus")] = None,
    type: Annotated[list[SourceType] | None, Query()] = None,
) -> list[MemberConnectionOut]:
    views = member_connections(
        runtime,
        member=member,
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


@router.post("/{connection_id}/oauth-url", response_model=OauthUrlOut, summary="getOauthUrl")
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
)
def delete_connection(
    connection_id: str, member: MemberCaller, runtime: RuntimeDep
) -> StatusUpdateOut:
    return StatusUpdateOut.of(
        delete_member_connection(runtime, member=member, connection_id=connection_id)
    )
