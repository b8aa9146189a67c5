"""Tenants: the health apps that use tether, each with its allow-listed return URLs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tether.errors import InvalidRequest, NotFound
from tether.ids import new_id
from tether.runtime import Runtime
from tether.store.models import Tenant


def create_tenant(session: Session, *, name: str, return_urls: list[str] | None = None) -> Tenant:
    """A new tenant, in the caller's unit of work."""
    if not name.strip():
        raise InvalidRequest("tenant name must not be empty")
    for url in return_urls or []:
        if not url.startswith(("https://", "http://")):
            raise InvalidRequest(f"return URL must be absolute http(s): {url!r}")
    tenant = Tenant(id=new_id("ten"), name=name.strip(), return_urls=list(return_urls or []))
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return tenant


@dataclass(frozen=True)
class TenantView:
    id: str
    name: str
    return_urls: tuple[str, ...]


def tenant(runtime: Runtime, *, tenant_id: str) -> TenantView:
    """One tenant, as its own settings read (404 when there is none)."""
    with runtime.db.read() as session:
        row = get_tenant(session, tenant_id)
        return TenantView(row.id, row.name, tuple(str(u) for u in row.return_urls or ()))
