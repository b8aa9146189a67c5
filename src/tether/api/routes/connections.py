"""getMemberConnections, one connection, and getOauthUrl (member token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tether.api.deps import MemberPrincipal, RuntimeDep
from tether.api.schemas import MemberConnectionOut, OauthUrlIn, OauthUrlOut
from tether.connections import establish, queries
from tether.domain import SourceType, Status, SyncStatus
from tether.store.models import DataSource

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


@router.get("/{connection_id}", response_model=MemberConnectionOut, summary="One connection")
def get_connection(
    connection_id: str, member: MemberPrincipal, runtime: RuntimeDep
) -> MemberConnectionOut:
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
