"""A tenant's webhook endpoints: register, list, change, rotate the secret, delete; and the
deliveries to one (list, replay since a moment, redeliver one event).

The signing secret is shown once, when it is made, and kept sealed by the vault. A rotation
keeps the old secret signing beside the new one for :data:`ROTATION_OVERLAP`, as the
Standard Webhooks specification allows, so receivers can switch without dropping a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tether import events
from tether.errors import Conflict, InvalidRequest, NotFound
from tether.identity.principals import TenantPrincipal
from tether.ids import new_id
from tether.runtime import Runtime
from tether.sealed import webhook_secret_binding
from tether.store.models import AuditEvent, Event, WebhookDelivery, WebhookEndpoint
from tether.webhooks import signing, ssrf

ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 50  # per tenant
MAX_REPLAY = 10_000  # events re-queued by one replay
HISTORY = 20  # attempts kept per delivery


@dataclass(frozen=True)
class EndpointView:
    id: str
    url: str
    description: str
    events: tuple[str, ...]  # empty: every type
    disabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created: datetime
    updated: datetime
    previous_secret_until: datetime | None

    @classmethod
    def of(cls, row: WebhookEndpoint, now: datetime) -> EndpointView:
        until = row.previous_secret_until
        return cls(
            id=row.id,
            url=row.url,
            description=row.description,
            events=tuple(row.event_types or ()),
            disabled=row.disabled_at is not None,
            disabled_reason=row.disabled_reason,
            disabled_at=row.disabled_at,
            failing_since=row.failing_since,
            created=row.created_at,
            updated=row.updated_at,
            previous_secret_until=until if row.previous_secret and until and until > now else None,
        )


@dataclass(frozen=True)
class DeliveryView:
    id: int
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt: datetime | None
    last_attempt: datetime | None
    last_status: int | None
    last_error: str | None
    last_duration_ms: int | None
    delivered: datetime | None
    created: datetime
    history: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class DeliveryPage:
    items: list[DeliveryView]
    next_after: int | None


def check_event_types(types: Sequence[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(types or ()))
    unknown = [t for t in chosen if t not in events.TYPES]
    if unknown:
        raise InvalidRequest(
            f"events: unknown event types {unknown}; known: {list(events.TYPES)}",
            code="UNKNOWN_EVENT_TYPE",
        )
    return chosen


def _audit(
    session: Session, tenant: TenantPrincipal, action: str, now: datetime, **detail: Any
) -> None:
    session.add(
        AuditEvent(
            tenant_id=tenant.tenant_id, action=action, actor=tenant.actor, detail=detail, at=now
        )
    )


def _require(
    session: Session, tenant_id: str, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint:
    row = session.get(WebhookEndpoint, endpoint_id, with_for_update=lock)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}", code="UNKNOWN_WEBHOOK_ENDPOINT")
    return row


def secrets_of(runtime: Runtime, row: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one while its
    overlap lasts."""
    found = [runtime.vault.decrypt(row.secret, binding=webhook_secret_binding(row.id, "secret"))]
    if row.previous_secret and row.previous_secret_until and row.previous_secret_until > now:
        found.append(
            runtime.vault.decrypt(
                row.previous_secret, binding=webhook_secret_binding(row.id, "previous_secret")
            )
        )
    return found


def create_endpoint(
    runtime: Runtime,
    *,
    tenant: TenantPrincipal,
    url: str,
    event_types: Sequence[str] | None = None,
    description: str = "",
) -> tuple[EndpointView, str]:
    """Register an endpoint; returns it and its signing secret (shown this once)."""
    url = ssrf.check_url(url, allow_private=runtime.settings.webhooks_allow_private)
    chosen = check_event_types(event_types)
    now = runtime.clock()
    secret = signing.new_secret()
    with runtime.db.write() as session:
        count = session.scalar(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant.tenant_id)
        )
        if (count or 0) >= MAX_ENDPOINTS:
            raise Conflict(
                f"a tenant has at most {MAX_ENDPOINTS} webhook endpoints", code="TOO_MANY_ENDPOINTS"
            )
        endpoint_id = new_id("we")
        row = WebhookEndpoint(
            id=endpoint_id,
            tenant_id=tenant.tenant_id,
            url=url,
            description=description,
            event_types=chosen,
            secret=runtime.vault.encrypt(
                secret, binding=webhook_secret_binding(endpoint_id, "secret")
            ),
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        _audit(session, tenant, "webhook_endpoint.created", now, endpoint=endpoint_id)
        view = EndpointView.of(row, now)
    return view, secret


def list_endpoints(runtime: Runtime, *, tenant: TenantPrincipal) -> list[EndpointView]:
    now = runtime.clock()
    with runtime.db.read() as session:
        rows = session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant.tenant_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return [EndpointView.of(row, now) for row in rows]


def get_endpoint(runtime: Runtime, *, tenant: TenantPrincipal, endpoint_id: str) -> EndpointView:
    with runtime.db.read() as session:
        return EndpointView.of(_require(session, tenant.tenant_id, endpoint_id), runtime.clock())


def update_endpoint(
    runtime: Runtime,
    *,
    tenant: TenantPrincipal,
    endpoint_id: str,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    disabled: bool | None = None,
) -> EndpointView:
    """Change what is given. Enabling a disabled endpoint resumes its pending deliveries."""
    if url is not None:
        url = ssrf.check_url(url, allow_private=runtime.settings.webhooks_allow_private)
    chosen = check_event_types(event_types) if event_types is not None else None
    now = runtime.clock()
    with runtime.db.write() as session:
        row = _require(session, tenant.tenant_id, endpoint_id, lock=True)
        changed: list[str] = []
        if url is not None and url != row.url:
            row.url, changed = url, [*changed, "url"]
        if chosen is not None:
            row.event_types, changed = chosen, [*changed, "events"]
        if description is not None:
            row.description, changed = description, [*changed, "description"]
        if disabled is True and row.disabled_at is None:
            row.disabled_at, row.disabled_reason = now, "disabled by the tenant"
            changed.append("disabled")
        elif disabled is False and row.disabled_at is not None:
            row.disabled_at = row.disabled_reason = row.failing_since = None
            _resume(session, row.id, now)
            changed.append("enabled")
        row.updated_at = now
        if changed:
            _audit(
                session, tenant, "webhook_endpoint.updated", now, endpoint=row.id, changed=changed
            )
        return EndpointView.of(row, now)


def _resume(session: Session, endpoint_id: str, now: datetime) -> None:
    """Make the endpoint's pending deliveries due now, and wake it after the commit."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == "pending")
        .values(next_attempt_at=now)
    )
    session.info.setdefault(events.WAKE, set()).add(endpoint_id)


def delete_endpoint(runtime: Runtime, *, tenant: TenantPrincipal, endpoint_id: str) -> None:
    """Remove the endpoint and its deliveries (the events stay in the log)."""
    now = runtime.clock()
    with runtime.db.write() as session:
        row = _require(session, tenant.tenant_id, endpoint_id, lock=True)
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id))
        session.delete(row)
        _audit(session, tenant, "webhook_endpoint.deleted", now, endpoint=endpoint_id)


def rotate_secret(
    runtime: Runtime, *, tenant: TenantPrincipal, endpoint_id: str
) -> tuple[EndpointView, str]:
    """A new secret; the current one keeps signing beside it for ``ROTATION_OVERLAP``."""
    now = runtime.clock()
    secret = signing.new_secret()
    with runtime.db.write() as session:
        row = _require(session, tenant.tenant_id, endpoint_id, lock=True)
        current = runtime.vault.decrypt(
            row.secret, binding=webhook_secret_binding(row.id, "secret")
        )
        row.previous_secret = runtime.vault.encrypt(
            current, binding=webhook_secret_binding(row.id, "previous_secret")
        )
        row.previous_secret_until = now + ROTATION_OVERLAP
        row.secret = runtime.vault.encrypt(secret, binding=webhook_secret_binding(row.id, "secret"))
        row.updated_at = now
        _audit(session, tenant, "webhook_endpoint.secret_rotated", now, endpoint=row.id)
        return EndpointView.of(row, now), secret


def deliveries(
    runtime: Runtime,
    *,
    tenant: TenantPrincipal,
    endpoint_id: str,
    state: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> DeliveryPage:
    """The endpoint's deliveries, newest first (keyset: ``after`` is the last id seen)."""
    with runtime.db.read() as session:
        _require(session, tenant.tenant_id, endpoint_id)
        query = (
            select(WebhookDelivery, Event.event_id, Event.type)
            .join(Event, Event.id == WebhookDelivery.event_pk)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
        )
        if state is not None:
            query = query.where(WebhookDelivery.state == state)
        if after is not None:
            query = query.where(WebhookDelivery.id < after)
        rows = session.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    items = [
        DeliveryView(
            id=d.id,
            event_id=event_id,
            event_type=etype,
            state=d.state,
            attempts=d.attempts,
            next_attempt=d.next_attempt_at if d.state == "pending" else None,
            last_attempt=d.last_attempt_at,
            last_status=d.last_status,
            last_error=d.last_error,
            last_duration_ms=d.last_duration_ms,
            delivered=d.delivered_at,
            created=d.created_at,
            history=tuple(d.history or ()),
        )
        for d, event_id, etype in rows[:limit]
    ]
    return DeliveryPage(items=items, next_after=items[-1].id if more and items else None)


def _requeue(session: Session, endpoint_id: str, event_pks: Sequence[int], now: datetime) -> int:
    """Make the endpoint's deliveries of these events pending and due now (new rows for events
    it never had). Same ``webhook-id``: receivers see the event they may already know."""
    if not event_pks:
        return 0
    existing = {
        d.event_pk: d
        for d in session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.event_pk.in_(list(event_pks)),
            )
        )
    }
    for pk in event_pks:
        known = existing.get(pk)
        if known is None:
            session.add(
                WebhookDelivery(
                    endpoint_id=endpoint_id,
                    event_pk=pk,
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                    history=[],
                    created_at=now,
                )
            )
        else:
            known.state, known.attempts, known.next_attempt_at = "pending", 0, now
            known.delivered_at = None
    session.info.setdefault(events.WAKE, set()).add(endpoint_id)
    return len(event_pks)


def replay(runtime: Runtime, *, tenant: TenantPrincipal, endpoint_id: str, since: datetime) -> int:
    """Deliver again every event (of the endpoint's types) since ``since``; returns how many
    (at most ``MAX_REPLAY``, oldest first: replay again from the last one for more)."""
    now = runtime.clock()
    with runtime.db.write() as session:
        row = _require(session, tenant.tenant_id, endpoint_id, lock=True)
        if row.disabled_at is not None:
            raise Conflict("the endpoint is disabled: enable it first", code="ENDPOINT_DISABLED")
        query = select(Event.id).where(
            Event.tenant_id == tenant.tenant_id, Event.created_at >= since
        )
        if row.event_types:
            query = query.where(Event.type.in_(list(row.event_types)))
        pks = list(session.scalars(query.order_by(Event.id).limit(MAX_REPLAY)))
        count = 0
        for start in range(0, len(pks), 500):
            count += _requeue(session, row.id, pks[start : start + 500], now)
        _audit(session, tenant, "webhook_endpoint.replayed", now, endpoint=row.id, events=count)
        return count


def redeliver(runtime: Runtime, *, tenant: TenantPrincipal, event_id: str) -> int:
    """Deliver one event again to every enabled endpoint that wants its type; returns how
    many endpoints."""
    now = runtime.clock()
    with runtime.db.write() as session:
        event = events.get_event(session, tenant_id=tenant.tenant_id, event_id=event_id)
        if event is None:
            raise NotFound(f"no event {event_id!r}", code="UNKNOWN_EVENT")
        rows = session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.tenant_id == tenant.tenant_id,
                WebhookEndpoint.disabled_at.is_(None),
            )
        )
        count = 0
        for row in rows:
            if not row.event_types or event.type in row.event_types:
                count += _requeue(session, row.id, [event.id], now)
        _audit(session, tenant, "event.redelivered", now, event=event_id, endpoints=count)
        return count


def redeliver_to(
    runtime: Runtime, *, tenant: TenantPrincipal, endpoint_id: str, event_id: str
) -> None:
    """Deliver one event again to one endpoint (the console's "Redeliver")."""
    now = runtime.clock()
    with runtime.db.write() as session:
        row = _require(session, tenant.tenant_id, endpoint_id, lock=True)
        event = events.get_event(session, tenant_id=tenant.tenant_id, event_id=event_id)
        if event is None:
            raise NotFound(f"no event {event_id!r}", code="UNKNOWN_EVENT")
        _requeue(session, row.id, [event.id], now)
        _audit(session, tenant, "event.redelivered", now, event=event_id, endpoints=1)


def pending_counts(runtime: Runtime, *, tenant: TenantPrincipal) -> dict[str, int]:
    """Per endpoint of the tenant, how many deliveries wait."""
    with runtime.db.read() as session:
        rows = session.execute(
            select(WebhookDelivery.endpoint_id, func.count())
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookEndpoint.tenant_id == tenant.tenant_id,
                WebhookDelivery.state == "pending",
            )
            .group_by(WebhookDelivery.endpoint_id)
        ).all()
        return {endpoint_id: int(n) for endpoint_id, n in rows}
