"""The tenant's audit trail of lifecycle changes (API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tether.api.schemas import AuditEventOut, AuditEventPage
from tether.audit import MAX_CURSOR, audit_events
from tether.http.deps import RuntimeDep, TenantCaller

router = APIRouter(prefix="/v1/audit-events", tags=["audit"])


@router.get("", response_model=AuditEventPage, summary="Lifecycle changes, oldest first")
def list_audit_events(
    tenant: TenantCaller,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_CURSOR, description="the nextAfter of the last page")
    ] = None,
    member_id: Annotated[str | None, Query(alias="memberId", max_length=40)] = None,
) -> AuditEventPage:
    page = audit_events(
        runtime, tenant_id=tenant.tenant_id, limit=limit, after=after, member_id=member_id
    )
    return AuditEventPage(
        items=[AuditEventOut.of(e) for e in page.items], next_after=page.next_after
    )
