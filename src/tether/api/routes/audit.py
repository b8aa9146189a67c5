"""The tenant's audit trail of lifecycle changes (API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from tether.api.deps import RuntimeDep, TenantPrincipal
from tether.api.schemas import AuditEventOut, AuditEventPage
from tether.store.models import AuditEvent

router = APIRouter(prefix="/v1/audit-events", tags=["audit"])


@router.get("", response_model=AuditEventPage, summary="Lifecycle changes, oldest first")
def list_audit_events(
    tenant: TenantPrincipal,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[int | None, Query(ge=0, description="the nextAfter of the last page")] = None,
    member_id: Annotated[str | None, Query(alias="memberId", max_length=40)] = None,
) -> AuditEventPage:
    query = (
        select(AuditEvent)
        .where(AuditEvent.tenant_id == tenant.tenant_id)
        .order_by(AuditEvent.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(AuditEvent.id > after)
    if member_id is not None:
        query = query.where(AuditEvent.member_id == member_id)
    with runtime.db.read() as session:
        events = list(session.scalars(query))
    return AuditEventPage(
        items=[AuditEventOut.of(e) for e in events],
        next_after=events[-1].id if len(events) == limit else None,
    )
