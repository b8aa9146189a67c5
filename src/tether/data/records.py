"""Reading the member's stored health data back (``GET /v1/fhir/{resourceType}``).

The stored JSON texts come back as they are, so the adapter can splice them into a Bundle
without parsing and re-serialising each resource.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from tether.connections.queries import require_connection
from tether.identity.principals import MemberPrincipal
from tether.runtime import Runtime
from tether.store.models import FhirResource

MAX_COUNT = 1000
MAX_CURSOR = 2**63 - 1  # resource row ids are BIGINT


@dataclass(frozen=True)
class RecordPage:
    """Raw JSON texts of one page, and the keyset cursor of the next one."""

    resources: list[str]
    next_after: int | None


def read_records(
    runtime: Runtime,
    *,
    member: MemberPrincipal,
    resource_type: str,
    connection_id: str | None = None,
    count: int = 50,
    after: int | None = None,
) -> RecordPage:
    """One page of the member's stored ``resource_type`` resources in storage order, optionally
    of one connection (404 when the member has no such connection); ``after`` is the previous
    page's ``next_after``."""
    member_id = member.member_id
    query = (
        select(FhirResource.id, FhirResource.data)
        .where(FhirResource.member_id == member_id, FhirResource.resource_type == resource_type)
        .order_by(FhirResource.id)
        .limit(count + 1)
    )
    if after is not None:
        query = query.where(FhirResource.id > after)
    with runtime.db.read() as session:
        if connection_id is not None:
            conn = require_connection(session, member_id=member_id, connection_id=connection_id)
            query = query.where(FhirResource.connection_id == conn.id)
        rows = session.execute(query).all()
    more = len(rows) > count
    rows = rows[:count]
    return RecordPage([row[1] for row in rows], rows[-1][0] if more and rows else None)
