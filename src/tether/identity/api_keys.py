"""Tenant API keys: ``tk_<key id>_<secret>``, stored as a keyed hash, revocable.

The key id finds the row; the secret is compared with its HMAC (keyed by ``TETHER_SECRET_KEY``),
so the plaintext is shown once, when the key is created, and never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tether.accounts.tenants import create_tenant, get_tenant
from tether.errors import AuthenticationRequired, NotFound
from tether.identity.liveness import require_live_credential
from tether.identity.principals import TenantPrincipal
from tether.ids import constant_time_equals, keyed_hash, new_id, new_secret
from tether.runtime import Runtime
from tether.store.models import ApiKey, Tenant, utcnow

API_KEY_PREFIX = "tk"


@dataclass(frozen=True)
class IssuedApiKey:
    key_id: str
    tenant_id: str
    name: str
    plaintext: str  # shown once; only its keyed hash is stored


@dataclass(frozen=True)
class ApiKeyView:
    """An API key as ``tether keys list`` shows it: never its secret or hash."""

    key_id: str
    tenant_id: str
    name: str
    created: datetime
    revoked_at: datetime | None


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX + "_")


def create_api_key(
    session: Session, *, tenant_id: str, pepper: str, name: str = ""
) -> tuple[ApiKey, str]:
    """Create a key in the caller's unit of work; returns it with its plaintext."""
    if session.get(Tenant, tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    key_id = new_id("key").split("_", 1)[1]
    secret = new_secret(32)
    key = ApiKey(
        id=key_id,
        tenant_id=tenant_id,
        name=name,
        secret_hash=keyed_hash(pepper, secret, purpose="api-key"),
    )
    session.add(key)
    session.flush()
    return key, f"{API_KEY_PREFIX}_{key_id}_{secret}"


def issue_api_key(runtime: Runtime, *, tenant_id: str, name: str = "") -> IssuedApiKey:
    """A new API key for the tenant (``tether keys create``)."""
    with runtime.db.write() as session:
        key, plaintext = create_api_key(
            session, tenant_id=tenant_id, pepper=runtime.secret_key, name=name
        )
        return IssuedApiKey(key.id, key.tenant_id, key.name, plaintext)


def list_api_keys(runtime: Runtime, *, tenant_id: str) -> list[ApiKeyView]:
    """The tenant's API keys, revoked ones too, oldest first (404 for an unknown tenant)."""
    with runtime.db.read() as session:
        get_tenant(session, tenant_id)
        rows = session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
        )
        return [ApiKeyView(k.id, k.tenant_id, k.name, k.created_at, k.revoked_at) for k in rows]


def register_tenant(
    runtime: Runtime,
    *,
    name: str,
    return_urls: list[str] | None = None,
    allowed_origins: list[str] | None = None,
) -> IssuedApiKey:
    """A new tenant and its first API key (named ``initial``), in one unit of work."""
    with runtime.db.write() as session:
        tenant = create_tenant(
            session, name=name, return_urls=return_urls, allowed_origins=allowed_origins
        )
        key, plaintext = create_api_key(
            session, tenant_id=tenant.id, pepper=runtime.secret_key, name="initial"
        )
        return IssuedApiKey(key.id, tenant.id, key.name, plaintext)


def revoke_api_key(session: Session, *, key_id: str, tenant_id: str | None = None) -> ApiKey:
    """Revoke in the caller's unit of work (idempotent); another tenant's key is not found."""
    key = session.get(ApiKey, key_id)
    if key is None or (tenant_id is not None and key.tenant_id != tenant_id):
        raise NotFound(f"no API key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def revoke(runtime: Runtime, *, key_id: str, tenant_id: str | None = None) -> datetime:
    """Revoke an API key, and with it everything it minted; returns when it was revoked."""
    with runtime.db.write() as session:
        revoked_at = revoke_api_key(session, key_id=key_id, tenant_id=tenant_id).revoked_at
        assert revoked_at is not None
        return revoked_at


def verify_api_key(session: Session, *, token: str, pepper: str) -> TenantPrincipal:
    """The tenant behind an API key, or 401."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise AuthenticationRequired("malformed API key")
    key = session.get(ApiKey, parts[1])
    if key is None or not constant_time_equals(
        key.secret_hash, keyed_hash(pepper, parts[2], purpose="api-key")
    ):
        raise AuthenticationRequired("invalid API key")
    if key.revoked_at is not None:
        raise AuthenticationRequired("this API key was revoked")
    require_live_credential(session, tenant_id=key.tenant_id)
    return TenantPrincipal(tenant_id=key.tenant_id, key_id=key.id)
