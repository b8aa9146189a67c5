"""A member's connections as the tenant's server sees them (API key): list, one, sync now,
disconnect, delete — the member's own operations, audited as ``tenant:<tenant id>``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tether.api.schemas import MemberConnectionOut, StatusUpdateOut, SyncRunOut
from tether.connections.deletion import delete_connection
from tether.connections.disconnect import disconnect
from tether.connections.views import member_connection, member_connections
from tether.http.deps import RuntimeDep, TenantCaller
from tether.http.openapi import problems
from tether.identity.delegation import act_for_member
from tether.identity.principals import MemberPrincipal, TenantPrincipal
from tether.runtime import Runtime
from tether.sync.history import connection_syncs
from tether.sync.scheduling import request_sync

router = APIRouter(prefix="/v1/members/{member_id}/connections", tags=["connections"])


def _acting(runtime: Runtime, tenant: TenantPrincipal, member_id: str) -> MemberPrincipal:
    return act_for_member(runtime, tenant=tenant, member_id=member_id, via="tenant")


@router.get(
    "", response_model=list[MemberConnectionOut], summary="A member's connections (API key)"
)
def list_connections(
    member_id: str, tenant: TenantCaller, runtime: RuntimeDep
) -> list[MemberConnectionOut]:
    member = _acting(runtime, tenant, member_id)
    return [MemberConnectionOut.of(v) for v in member_connections(runtime, member=member)]


@router.get(
    "/{connection_id}", response_model=MemberConnectionOut, summary="One connection (API key)"
)
def get_connection(
    member_id: str, connection_id: str, tenant: TenantCaller, runtime: RuntimeDep
) -> MemberConnectionOut:
    member = _acting(runtime, tenant, member_id)
    return MemberConnectionOut.of(
        member_connection(runtime, member=member, connection_id=connection_id)
    )


@router.post(
    "/{connection_id}/sync",
    response_model=MemberConnectionOut,
    status_code=202,
    summary="Sync now for a member (API key; poll the connection's syncStatus)",
    responses=problems(409),
)
def sync_now(
    member_id: str, connection_id: str, tenant: TenantCaller, runtime: RuntimeDep
) -> MemberConnectionOut:
    member = _acting(runtime, tenant, member_id)
    request_sync(runtime, member=member, connection_id=connection_id)
    return MemberConnectionOut.of(
        member_connection(runtime, member=member, connection_id=connection_id)
    )


@router.post(
    "/{connection_id}/disconnect",
    response_model=StatusUpdateOut,
    summary="Disconnect a member's connection (API key): stop retrieval, keep the data",
    responses=problems(409),
)
def disconnect_connection(
    member_id: str, connection_id: str, tenant: TenantCaller, runtime: RuntimeDep
) -> StatusUpdateOut:
    member = _acting(runtime, tenant, member_id)
    return StatusUpdateOut.of(disconnect(runtime, member=member, connection_id=connection_id))


@router.delete(
    "/{connection_id}",
    response_model=StatusUpdateOut,
    status_code=202,
    summary="Delete a member's connection (API key): the data is deleted asynchronously",
    responses=problems(409),
)
def delete(
    member_id: str, connection_id: str, tenant: TenantCaller, runtime: RuntimeDep
) -> StatusUpdateOut:
    member = _acting(runtime, tenant, member_id)
    return StatusUpdateOut.of(
        delete_connection(runtime, member=member, connection_id=connection_id)
    )


@router.get(
    "/{connection_id}/syncs",
    response_model=list[SyncRunOut],
    summary="The connection's sync history, newest first (API key; the last 100 runs)",
)
def list_syncs(
    member_id: str,
    connection_id: str,
    tenant: TenantCaller,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> list[SyncRunOut]:
    member = _acting(runtime, tenant, member_id)
    runs = connection_syncs(runtime, member=member, connection_id=connection_id, limit=limit)
    return [SyncRunOut.of(run) for run in runs]
