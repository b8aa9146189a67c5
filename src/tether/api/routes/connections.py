"""getMemberConnections, one connection, and getOauthUrl (member token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tether.accounts.service import Principal
from tether.api.deps import MemberPrincipal, RuntimeDep
from tether.api.schemas import (
    CreateConnectionIn,
    MemberConnectionOut,
    OauthUrlIn,
    OauthUrlOut,
    StatusUpdateOut,
)
from tether.connections import basic, establish, manage, queries
from tether.domain import SourceType, Status, SyncStatus
from tether.runtime import Runtime
from tether.store.models import DataSource
from tether.sync.scheduling import request_sync

router = APIRouter(prefix="/v1/connections", tags=["connections"])


@router.get("", response_model=list[MemberConnectionOut], summary="getMemberConnections")
def get_member_connections(
    member: MemberPrincipal,
    runtime: RuntimeDep,
    status: Annotated[list[Status] | None, Query()] = None,
    sync_status: Annotated[list[SyncStatus] | None, Query(alias="syncStatus")] = None,
    type: Annotated[list[SourceType] | None, Query()] = None,
) -> list[MemberConnectionOut]:
    assert member.member_id is not None
    with runtime.db.read() as session:
        rows = queries.member_connections(
            session,
            member_id=member.member_id,
            status=status or (),
            sync_status=sync_status or (),
            source_type=type or (),
        )
        return [MemberConnectionOut.of(conn, source) for conn, source in rows]


@router.post(
    "",
    response_model=MemberConnectionOut,
    status_code=201,
    summary="createConnection: connect a BASIC source with the member's portal credentials",
)
def create_connection(
    body: CreateConnectionIn, member: MemberPrincipal, runtime: RuntimeDep
) -> MemberConnectionOut:
    basic.create_connection(
        runtime, member, body.connection_id, body.username, body.password.get_secret_value()
    )
    return _view(runtime, member, body.connection_id)


@router.get("/{connection_id}", response_model=MemberConnectionOut, summary="One connection")
def get_connection(
    connection_id: str, member: MemberPrincipal, runtime: RuntimeDep
) -> MemberConnectionOut:
    return _view(runtime, member, connection_id)


def _view(runtime: Runtime, member: Principal, connection_id: str) -> MemberConnectionOut:
    """The member's connection as the API shows it."""
    assert member.member_id is not None
    with runtime.db.read() as session:
        conn = queries.require_connection(
            session, member_id=member.member_id, connection_id=connection_id
        )
        source = session.get(DataSource, conn.data_source_id)
        assert source is not None
        return MemberConnectionOut.of(conn, source)


@router.post("/{connection_id}/oauth-url", response_model=OauthUrlOut, summary="getOauthUrl")
def get_oauth_url(
    connection_id: str,
    member: MemberPrincipal,
    runtime: RuntimeDep,
    body: OauthUrlIn | None = None,
) -> OauthUrlOut:
    url = establish.get_oauth_url(runtime, member, connection_id, body.return_url if body else None)
    return OauthUrlOut(redirect_url=url)


@router.post(
    "/{connection_id}/sync",
    response_model=MemberConnectionOut,
    status_code=202,
    summary="Sync now (asynchronous: poll the connection's syncStatus)",
)
def sync_now(
    connection_id: str, member: MemberPrincipal, runtime: RuntimeDep
) -> MemberConnectionOut:
    assert member.member_id is not None
    request_sync(runtime, member_id=member.member_id, connection_id=connection_id)
    return _view(runtime, member, connection_id)


@router.post(
    "/{connection_id}/disconnect",
    response_model=StatusUpdateOut,
    summary="disconnectConnection: stop retrieval, revoke tokens, keep the data",
)
def disconnect_connection(
    connection_id: str, member: MemberPrincipal, runtime: RuntimeDep
) -> StatusUpdateOut:
    return StatusUpdateOut.of(manage.disconnect(runtime, member, connection_id))


@router.delete(
    "/{connection_id}",
    response_model=StatusUpdateOut,
    status_code=202,
    summary="deleteConnection: revoke tokens now, delete the data asynchronously",
)
def delete_connection(
    connection_id: str, member: MemberPrincipal, runtime: RuntimeDep
) -> StatusUpdateOut:
    return StatusUpdateOut.of(manage.delete_connection(runtime, member, connection_id))
