"""The audit trail: who changed what, when (never tokens, never health data).

Lifecycle changes are written by :mod:`tether.connections.lifecycle` in the same transaction
as the change, app links by :mod:`tether.identity.app_links`; this module is the read side the
tenant sees (``GET /v1/audit-events``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tether.runtime import Runtime
from tether.store.models import AuditEvent

MAX_CURSOR = 2**63 - 1  # event ids are BIGINT


@dataclass(frozen=True)
class AuditEventView:
    id: int
    at: datetime
    member_id: str | None
    connection_id: str | None
    action: str
    actor: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]


# The view's columns in its field order: a page is read as plain rows, not ORM objects (100
# objects with their state tracking cost more than the query on a deep page).
_COLUMNS = (
    AuditEvent.id,
    AuditEvent.at,
    AuditEvent.member_id,
    AuditEvent.data_source_id,
    AuditEvent.action,
    AuditEvent.actor,
    AuditEvent.from_status,
    AuditEvent.to_status,
    AuditEvent.detail,
)


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEventView]
    next_after: int | None


def audit_events(
    runtime: Runtime,
    *,
    tenant_id: str,
    limit: int = 100,
    after: int | None = None,
    member_id: str | None = None,
) -> AuditPage:
    """The tenant's events, oldest first, a page at a time (``after``: the last page's
    ``next_after``), optionally one member's."""
    query = (
        select(*_COLUMNS)
        .where(AuditEvent.tenant_id == tenant_id)
        .order_by(AuditEvent.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(AuditEvent.id > after)
    if member_id is not None:
        query = query.where(AuditEvent.member_id == member_id)
    with runtime.db.read() as session:
        events = [
            AuditEventView(pk, at, member, source, action, actor, was, now, dict(detail or {}))
            for pk, at, member, source, action, actor, was, now, detail in session.execute(query)
        ]
    return AuditPage(events, events[-1].id if len(events) == limit else None)
