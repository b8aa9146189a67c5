"""The calling tenant's own settings (API key): its name, return URLs and browser origins."""

from __future__ import annotations

from fastapi import APIRouter

from tether.accounts import tenants
from tether.api.schemas import TenantOut, TenantUpdate
from tether.http.deps import RuntimeDep, TenantCaller
from tether.http.openapi import problems

router = APIRouter(prefix="/v1/tenant", tags=["tenant"])


@router.get("", response_model=TenantOut, summary="The calling tenant's settings")
def get_tenant(tenant: TenantCaller, runtime: RuntimeDep) -> TenantOut:
    return TenantOut.of(tenants.tenant(runtime, tenant_id=tenant.tenant_id))


@router.patch(
    "",
    response_model=TenantOut,
    summary="Change the calling tenant's name, return URLs or browser origins",
    responses=problems(400),
    description="Only the fields given change, all or nothing; each list replaces the old "
    "one. Every change is an audit event (`tenant.updated`). A refused value is a 400 "
    "problem whose `field` names it (`returnUrls[1]`).",
)
def update_tenant(body: TenantUpdate, tenant: TenantCaller, runtime: RuntimeDep) -> TenantOut:
    view = tenants.update_tenant(
        runtime,
        tenant_id=tenant.tenant_id,
        actor=tenant.actor,
        name=body.name,
        return_urls=body.return_urls,
        allowed_origins=body.allowed_origins,
    )
    return TenantOut.of(view)
