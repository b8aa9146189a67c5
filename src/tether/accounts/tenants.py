"""Tenants: the health apps that use tether, their return URLs and browser origins.

Use cases (``runtime`` first, then keywords) answer frozen :class:`TenantView` objects; every
change they make writes an audit event in the same transaction (``GET /v1/audit-events``).
What a tenant may register is checked by :mod:`tether.accounts.return_urls`, before anything is
written. Disabling a tenant is read by :func:`tether.identity.liveness.require_live` (every
credential of the tenant stops at its next request) and by the sync's claims (no scheduled
sync of its members runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tether.accounts.return_urls import check_name, check_origins, check_return_urls
from tether.errors import NotFound
from tether.ids import new_id
from tether.runtime import Runtime
from tether.store.models import AuditEvent, Tenant

UPDATED = "tenant.updated"
# How the audit trail (and the API's problems) name each setting.
FIELDS = {"name": "name", "return_urls": "returnUrls", "allowed_origins": "allowedOrigins"}
DISABLED = "tenant.disabled"
ENABLED = "tenant.enabled"


def create_tenant(
    session: Session,
    *,
    name: str,
    return_urls: list[str] | None = None,
    allowed_origins: list[str] | None = None,
) -> Tenant:
    """A new tenant, in the caller's unit of work (input checked before anything is added)."""
    tenant = Tenant(
        id=new_id("ten"),
        name=check_name(name),
        return_urls=check_return_urls(list(return_urls or [])),
        allowed_origins=check_origins(list(allowed_origins or [])),
    )
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, tenant_id: str, *, for_update: bool = False) -> Tenant:
    tenant = session.get(Tenant, tenant_id, with_for_update=for_update)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return tenant


@dataclass(frozen=True)
class TenantView:
    id: str
    name: str
    return_urls: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    created: datetime
    disabled_at: datetime | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @classmethod
    def of(cls, row: Tenant) -> TenantView:
        return cls(
            id=row.id,
            name=row.name,
            return_urls=tuple(str(u) for u in row.return_urls or ()),
            allowed_origins=tuple(str(o) for o in row.allowed_origins or ()),
            created=row.created_at,
            disabled_at=row.disabled_at,
        )


def tenant(runtime: Runtime, *, tenant_id: str) -> TenantView:
    """One tenant, as its own settings read (404 when there is none)."""
    with runtime.db.read() as session:
        return TenantView.of(get_tenant(session, tenant_id))


def list_tenants(runtime: Runtime) -> list[TenantView]:
    """Every tenant, oldest first."""
    with runtime.db.read() as session:
        rows = session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.id))
        return [TenantView.of(row) for row in rows]


def _audit(
    session: Session, *, tenant_id: str, action: str, actor: str, at: datetime, detail: Any
) -> None:
    session.add(AuditEvent(tenant_id=tenant_id, action=action, actor=actor, detail=detail, at=at))


def update_tenant(
    runtime: Runtime,
    *,
    tenant_id: str,
    actor: str,
    name: str | None = None,
    return_urls: list[str] | None = None,
    allowed_origins: list[str] | None = None,
) -> TenantView:
    """Change the given settings (None: leave as is), all or nothing.

    Everything is checked before the row is touched; one ``tenant.updated`` audit event lists
    each changed field with its old and new value. Setting what is already there changes
    nothing and writes no event.
    """
    wanted: dict[str, Any] = {}
    if name is not None:
        wanted["name"] = check_name(name)
    if return_urls is not None:
        wanted["return_urls"] = check_return_urls(return_urls)
    if allowed_origins is not None:
        wanted["allowed_origins"] = check_origins(allowed_origins)
    with runtime.db.write() as session:
        row = get_tenant(session, tenant_id, for_update=True)
        changed = {}
        for field, value in wanted.items():
            before = getattr(row, field)
            if before != value:
                changed[FIELDS[field]] = {"from": before, "to": value}
                setattr(row, field, value)
        if changed:
            _audit(
                session,
                tenant_id=tenant_id,
                action=UPDATED,
                actor=actor,
                at=runtime.clock(),
                detail={"changed": changed},
            )
        session.flush()
        return TenantView.of(row)


def set_disabled(runtime: Runtime, *, tenant_id: str, actor: str, disabled: bool) -> TenantView:
    """Disable (or enable again) a tenant; idempotent, audited when it changes something.

    A disabled tenant's API keys, member tokens, SDK tokens, app links and page sessions stop
    at their next request, and none of its members' connections is synced until it is
    enabled again (its data and connections stay as they are).
    """
    now = runtime.clock()
    with runtime.db.write() as session:
        row = get_tenant(session, tenant_id, for_update=True)
        if disabled and row.disabled_at is None:
            row.disabled_at = now
            _audit(session, tenant_id=tenant_id, action=DISABLED, actor=actor, at=now, detail={})
        elif not disabled and row.disabled_at is not None:
            since = row.disabled_at.isoformat()
            row.disabled_at = None
            _audit(
                session,
                tenant_id=tenant_id,
                action=ENABLED,
                actor=actor,
                at=now,
                detail={"disabledSince": since},
            )
        session.flush()
        return TenantView.of(row)


def browser_origins(runtime: Runtime) -> frozenset[str]:
    """The allowed browser origins of every live tenant (GraphQL's CORS)."""
    with runtime.db.read() as session:
        lists = session.scalars(select(Tenant.allowed_origins).where(Tenant.disabled_at.is_(None)))
        return frozenset(str(origin) for origins in lists for origin in origins or ())
