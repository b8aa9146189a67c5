"""Members and member tokens (tenant API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from tether.accounts import members
from tether.api.schemas import MemberCreate, MemberList, MemberOut, MemberTokenOut
from tether.http.deps import RuntimeDep, TenantCaller
from tether.http.openapi import problems
from tether.identity.member_tokens import mint_member_token

router = APIRouter(prefix="/v1/members", tags=["members"])


@router.post(
    "",
    response_model=MemberOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a member (idempotent on externalId: 200 with the existing one)",
    responses={
        200: {"model": MemberOut, "description": "The member with this externalId already"},
        **problems(400),
    },
)
def create_member(
    body: MemberCreate, tenant: TenantCaller, runtime: RuntimeDep, response: Response
) -> MemberOut:
    member, created = members.create_member(
        runtime, tenant_id=tenant.tenant_id, external_id=body.external_id
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return MemberOut.of(member)


@router.get("", response_model=MemberList, summary="List the tenant's members")
def list_members(
    tenant: TenantCaller,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(max_length=40)] = None,
) -> MemberList:
    page = members.list_members(runtime, tenant_id=tenant.tenant_id, limit=limit, after=after)
    return MemberList(items=[MemberOut.of(m) for m in page.items], next_after=page.next_after)


@router.get("/{member_id}", response_model=MemberOut, summary="One of the tenant's members")
def get_member(member_id: str, tenant: TenantCaller, runtime: RuntimeDep) -> MemberOut:
    return MemberOut.of(members.member(runtime, tenant_id=tenant.tenant_id, member_id=member_id))


@router.post(
    "/{member_id}/tokens",
    response_model=MemberTokenOut,
    status_code=status.HTTP_201_CREATED,
    summary="Issue a short-lived member token for the member's app or the SDK",
    description="The token names the API key that minted it (claim `kid`): revoking the key "
    "stops the token, and the SDK refresh tokens obtained with it, before they expire.",
)
def issue_token(member_id: str, tenant: TenantCaller, runtime: RuntimeDep) -> MemberTokenOut:
    issued = mint_member_token(
        runtime, tenant_id=tenant.tenant_id, member_id=member_id, key_id=tenant.key_id
    )
    return MemberTokenOut(token=issued.token, expires_at=issued.expires_at)
