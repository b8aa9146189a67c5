"""``tether demo``: a self-configuring local instance with a seeded tenant and member."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tether.accounts.members import ensure_member
from tether.accounts.return_urls import check_return_url
from tether.accounts.tenants import create_tenant
from tether.errors import InvalidRequest
from tether.identity.api_keys import create_api_key
from tether.identity.member_tokens import issue_member_token
from tether.identity.sdk_tokens import client_key_for
from tether.runtime import Runtime
from tether.store.models import Tenant

DEMO_FILE = "demo.json"
DEMO_TENANT = "Demo Health App"
DEMO_MEMBER = "demo-member"


@dataclass(frozen=True)
class DemoCredentials:
    tenant_id: str
    api_key: str
    client_key: str  # the health SDK's clientKey for this tenant (docs/sdk-compat.md)
    member_id: str
    member_token: str
    base_url: str


def _own_return_urls(runtime: Runtime) -> list[str]:
    """The member page's ``/app``, when the return-URL rules allow it (an http base URL on a
    host other than loopback is not: the page then needs no registered return URL)."""
    try:
        return [check_return_url(f"{runtime.settings.public_base_url}/app")]
    except InvalidRequest:
        return []


def seed(runtime: Runtime) -> DemoCredentials:
    """Create the demo tenant, API key and member once; mint a fresh member token each run.

    The SDK ``clientKey`` naming the demo tenant is written next to the API key (it is not a
    secret: it only names the tenant).

    Everything is written to ``demo.json`` in the data directory (mode 0600) so scripts and
    the docs can use it. The member token is the operator's, not the API key's: it has no
    ``kid`` claim, so revoking the demo key does not stop it; it stays valid until it expires
    (``TETHER_MEMBER_TOKEN_TTL``).
    """
    settings = runtime.settings
    path = settings.data_dir / DEMO_FILE
    stored = json.loads(path.read_text()) if path.exists() else None
    with runtime.db.write() as session:
        if stored is None or session.get(Tenant, stored["tenant_id"]) is None:
            tenant = create_tenant(session, name=DEMO_TENANT, return_urls=_own_return_urls(runtime))
            _key, api_key = create_api_key(
                session, tenant_id=tenant.id, pepper=runtime.secret_key, name="demo"
            )
            stored = {"tenant_id": tenant.id, "api_key": api_key}
        member, _ = ensure_member(session, tenant_id=stored["tenant_id"], external_id=DEMO_MEMBER)
        issued = issue_member_token(  # operator-minted: no key_id, no kid
            session,
            member_id=member.id,
            tenant_id=stored["tenant_id"],
            secret_key=runtime.secret_key,
            ttl=settings.member_token_ttl,
        )
    creds = DemoCredentials(
        tenant_id=stored["tenant_id"],
        api_key=stored["api_key"],
        client_key=client_key_for(stored["tenant_id"]),
        member_id=member.id,
        member_token=issued.token,
        base_url=settings.public_base_url,
    )
    _write_private(path, creds)
    return creds


def _write_private(path: Path, creds: DemoCredentials) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(creds.__dict__, handle, indent=2)
    os.replace(tmp, path)
