"""Reading the member's stored health data back (``GET /v1/fhir/{resourceType}``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tether.connections.queries import require_connection
from tether.store.models import FhirResource

MAX_COUNT = 1000


@dataclass(frozen=True)
class RecordPage:
    """Raw JSON texts of one page, and the keyset cursor of the next one."""

    resources: list[str]
    next_after: int | None


def read_records(
    session: Session,
    *,
    member_id: str,
    resource_type: str,
    connection_id: str | None = None,
    count: int = 50,
    after: int | None = None,
) -> RecordPage:
    query = (
        select(FhirResource.id, FhirResource.data)
        .where(FhirResource.member_id == member_id, FhirResource.resource_type == resource_type)
        .order_by(FhirResource.id)
        .limit(count + 1)
    )
    if connection_id is not None:
        conn = require_connection(session, member_id=member_id, connection_id=connection_id)
        query = query.where(FhirResource.connection_id == conn.id)
    if after is not None:
        query = query.where(FhirResource.id > after)
    rows = session.execute(query).all()
    more = len(rows) > count
    rows = rows[:count]
    return RecordPage([row[1] for row in rows], rows[-1][0] if more and rows else None)
