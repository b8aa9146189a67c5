"""Members and member tokens (tenant API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from tether.accounts import service as accounts
from tether.api.deps import RuntimeDep, TenantPrincipal
from tether.api.schemas import MemberCreate, MemberList, MemberOut, MemberTokenOut

router = APIRouter(prefix="/v1/members", tags=["members"])


@router.post(
    "",
    response_model=MemberOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a member (idempotent on externalId: 200 with the existing one)",
)
def create_member(
    body: MemberCreate, tenant: TenantPrincipal, runtime: RuntimeDep, response: Response
) -> MemberOut:
    with runtime.db.write() as session:
        member, created = accounts.ensure_member(
            session, tenant_id=tenant.tenant_id, external_id=body.external_id
        )
        if not created:
            response.status_code = status.HTTP_200_OK
        return MemberOut.of(member)


@router.get("", response_model=MemberList, summary="List the tenant's members")
def list_members(
    tenant: TenantPrincipal,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(max_length=40)] = None,
) -> MemberList:
    with runtime.db.read() as session:
        members = accounts.list_members(
            session, tenant_id=tenant.tenant_id, limit=limit, after=after
        )
    return MemberList(
        items=[MemberOut.of(m) for m in members],
        next_after=members[-1].id if len(members) == limit else None,
    )


@router.get("/{member_id}", response_model=MemberOut, summary="One of the tenant's members")
def get_member(member_id: str, tenant: TenantPrincipal, runtime: RuntimeDep) -> MemberOut:
    with runtime.db.read() as session:
        return MemberOut.of(
            accounts.get_member(session, member_id=member_id, tenant_id=tenant.tenant_id)
        )


@router.post(
    "/{member_id}/tokens",
    response_model=MemberTokenOut,
    status_code=status.HTTP_201_CREATED,
    summary="Issue a short-lived member token for the member's app or the SDK",
    description="The token names the API key that minted it (claim `kid`): revoking the key "
    "stops the token, and the SDK refresh tokens obtained with it, before they expire.",
)
def issue_token(member_id: str, tenant: TenantPrincipal, runtime: RuntimeDep) -> MemberTokenOut:
    with runtime.db.read() as session:
        issued = accounts.issue_member_token(
            session,
            member_id=member_id,
            tenant_id=tenant.tenant_id,
            secret_key=runtime.secret_key,
            ttl=runtime.settings.member_token_ttl,
            key_id=tenant.key_id,
            now=runtime.clock(),
        )
    return MemberTokenOut(token=issued.token, expires_at=issued.expires_at)
