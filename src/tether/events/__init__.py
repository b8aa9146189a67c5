"""Events: what happened to a member's connections, written in the same transaction as the change.

This is a transactional outbox. :func:`record` adds the event row — and one pending delivery
per webhook endpoint of the tenant that wants its type — in the caller's session, so no change
is ever committed without its event and no event exists for a change that rolled back. After
the commit, :mod:`tether.webhooks` is woken (the endpoints to wake are left in
``session.info[WAKE]``; the composition root hooks :meth:`Database.write` up to it) and the
deliveries sweep re-drives whatever a lost wake-up left behind.

An event's ``data`` is enough for the app to act without calling back — ids, status,
syncStatus, syncErrors, what a sync added — and never carries tokens or health data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from tether.errors import NotFound
from tether.ids import new_id
from tether.runtime import Runtime
from tether.store.models import Connection, Event, Member, WebhookDelivery, WebhookEndpoint

# The event types (names final). ``connection.expiring``: the grant ends at its source within
# ``expiring_notice_days`` (tether.connections.expiring); ``webhook_endpoint.disabled``
# says that tether stopped delivering to one of the tenant's endpoints.
CONNECTION_CONNECTED = "connection.connected"
CONNECTION_EXPIRED = "connection.expired"
CONNECTION_DISCONNECTED = "connection.disconnected"
CONNECTION_ERROR = "connection.error"
CONNECTION_ACCESS_ENDED = "connection.access_ended"
CONNECTION_DELETED = "connection.deleted"
CONNECTION_DATA_DELETED = "connection.data_deleted"
CONNECTION_EXPIRING = "connection.expiring"
SYNC_COMPLETED = "sync.completed"
SYNC_FAILED = "sync.failed"
ENDPOINT_DISABLED = "webhook_endpoint.disabled"

TYPES: tuple[str, ...] = (
    CONNECTION_CONNECTED,
    CONNECTION_EXPIRED,
    CONNECTION_DISCONNECTED,
    CONNECTION_ERROR,
    CONNECTION_ACCESS_ENDED,
    CONNECTION_DELETED,
    CONNECTION_DATA_DELETED,
    CONNECTION_EXPIRING,
    SYNC_COMPLETED,
    SYNC_FAILED,
    ENDPOINT_DISABLED,
)

# The status a lifecycle transition moves to → the event it writes.
BY_STATUS: Mapping[str, str] = {
    "CONNECTED": CONNECTION_CONNECTED,
    "EXPIRED": CONNECTION_EXPIRED,
    "DISCONNECTED": CONNECTION_DISCONNECTED,
    "ERROR": CONNECTION_ERROR,
    "ACCESS_ENDED": CONNECTION_ACCESS_ENDED,
    "DELETED": CONNECTION_DELETED,
}

# Built once: these run inside every lifecycle change.
_INSERT_EVENT = insert(Event).returning(Event.id)
_ENDPOINTS = select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
    WebhookEndpoint.tenant_id == bindparam("tenant"), WebhookEndpoint.disabled_at.is_(None)
)
_INSERT_DELIVERY = insert(WebhookDelivery)

WAKE = "tether.webhooks.wake"  # session.info key: endpoint ids with new pending deliveries
MAX_PAGE = 500


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def connection_data(
    session: Session, conn: Connection, *, external_id: str | None = None
) -> dict[str, Any]:
    """What every connection event says about its connection, as it is now."""
    if external_id is None:
        member = session.get(Member, conn.member_id)
        external_id = member.external_id if member is not None else None
    return {
        "tenantId": conn.tenant_id,
        "memberId": conn.member_id,
        "externalId": external_id,
        "connectionId": conn.data_source_id,
        "status": conn.status,
        "syncStatus": conn.sync_status,
        "syncErrors": list(conn.sync_errors or []),
        "statusUpdated": _iso(conn.status_updated_at),
        "lastSynced": _iso(conn.last_synced_at) if conn.last_synced_at else None,
        "authorizationExpires": (
            _iso(conn.authorization_expires_at) if conn.authorization_expires_at else None
        ),
    }


def record_for_connection(
    session: Session,
    conn: Connection,
    type: str,
    *,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
    external_id: str | None = None,
) -> str:
    """Record ``type`` for ``conn`` (in the caller's transaction); returns the event's id.
    ``external_id``: the member's, when the caller has it at hand (saves a lookup)."""
    data = connection_data(session, conn, external_id=external_id)
    if extra:
        data.update(extra)
    return record(
        session, tenant_id=conn.tenant_id, member_id=conn.member_id, type=type, data=data, now=now
    )


def record(
    session: Session,
    *,
    tenant_id: str,
    type: str,
    data: Mapping[str, Any],
    now: datetime,
    member_id: str | None = None,
) -> str:
    """Add the event and its pending deliveries to ``session``'s transaction (Core inserts:
    this runs inside every lifecycle change); returns the event's id (``evt_…``)."""
    if type not in TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event_id = new_id("evt")
    row = {
        "event_id": event_id,
        "tenant_id": tenant_id,
        "member_id": member_id,
        "type": type,
        "created_at": now,
        "data": {"eventId": event_id, **data},
    }
    pk = session.execute(_INSERT_EVENT, row).scalar_one()
    endpoints = session.execute(_ENDPOINTS, {"tenant": tenant_id}).all()
    wanted = [endpoint for endpoint, types in endpoints if not types or type in types]
    if wanted:
        session.execute(
            _INSERT_DELIVERY,
            [
                {
                    "endpoint_id": endpoint,
                    "event_pk": pk,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "history": [],
                    "created_at": now,
                }
                for endpoint in wanted
            ],
        )
        session.info.setdefault(WAKE, set()).update(wanted)
    return event_id


def envelope(event: Event) -> dict[str, Any]:
    """The Standard Webhooks payload: ``{type, timestamp, data}``."""
    return {"type": event.type, "timestamp": _iso(event.created_at), "data": event.data}


@dataclass(frozen=True)
class EventPage:
    items: list[Event]
    next_after: str | None  # the last event's id when more may follow


def list_events(
    session: Session,
    *,
    tenant_id: str,
    types: Sequence[str] = (),
    member_id: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> EventPage:
    """The tenant's events, oldest first, after the event ``after`` (keyset on the row id)."""
    query = select(Event).where(Event.tenant_id == tenant_id)
    if types:
        query = query.where(Event.type.in_(list(types)))
    if member_id is not None:
        query = query.where(Event.member_id == member_id)
    if after is not None:
        cursor = session.scalar(
            select(Event.id).where(Event.event_id == after, Event.tenant_id == tenant_id)
        )
        if cursor is None:
            raise NotFound("no such event (it may be older than the retention period)")
        query = query.where(Event.id > cursor)
    rows = list(session.scalars(query.order_by(Event.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(items=rows, next_after=rows[-1].event_id if more and rows else None)


def get_event(session: Session, *, tenant_id: str, event_id: str) -> Event | None:
    return session.scalar(
        select(Event).where(Event.event_id == event_id, Event.tenant_id == tenant_id)
    )


def purge(session: Session, *, now: datetime, retention_days: int, batch: int = 5000) -> int:
    """Delete up to ``batch`` events older than the retention period (their deliveries go
    with them); returns how many."""
    cutoff = now - timedelta(days=retention_days)
    ids = list(
        session.scalars(
            select(Event.id).where(Event.created_at < cutoff).order_by(Event.id).limit(batch)
        )
    )
    if not ids:
        return 0
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_pk.in_(ids)))
    session.execute(delete(Event).where(Event.id.in_(ids)))
    return len(ids)


def tenant_events(
    runtime: Runtime,
    *,
    tenant_id: str,
    types: Sequence[str] = (),
    member_id: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], str | None]:
    """``GET /v1/events``: the tenant's event payloads, oldest first, and the next cursor."""
    with runtime.db.read() as session:
        page = list_events(
            session, tenant_id=tenant_id, types=types, member_id=member_id, after=after, limit=limit
        )
        return [envelope(e) for e in page.items], page.next_after
