"""``tether tenants|keys|members``: account administration for operators."""

from __future__ import annotations

from typing import Annotated

import typer

from tether.accounts import members as accounts
from tether.cli.app import emit, options, runtime_from
from tether.identity import api_keys
from tether.identity.member_tokens import mint_member_token

tenants = typer.Typer(help="Tenants (the health apps using this tether).", no_args_is_help=True)
keys = typer.Typer(help="Tenant API keys and the token vault's keys.", no_args_is_help=True)
members = typer.Typer(help="Members of a tenant.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tenants, name="tenants")
    app.add_typer(keys, name="keys")
    app.add_typer(members, name="members")


JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@tenants.command("create")
def create_tenant(
    ctx: typer.Context,
    name: str,
    return_url: Annotated[
        list[str] | None, typer.Option(help="allow-listed return URL (repeatable)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant and its first API key (shown once)."""
    runtime = runtime_from(ctx)
    key = api_keys.register_tenant(runtime, name=name, return_urls=return_url or [])
    emit({"tenant_id": key.tenant_id, "key_id": key.key_id, "api_key": key.plaintext}, as_json)


@keys.command("create")
def create_key(
    ctx: typer.Context, tenant_id: str, name: str = "", as_json: JsonOpt = False
) -> None:
    """Create another API key for a tenant (shown once)."""
    key = api_keys.issue_api_key(runtime_from(ctx), tenant_id=tenant_id, name=name)
    emit({"key_id": key.key_id, "api_key": key.plaintext}, as_json)


@keys.command("revoke")
def revoke_key(ctx: typer.Context, key_id: str, as_json: JsonOpt = False) -> None:
    """Revoke an API key: it stops working at once."""
    revoked_at = api_keys.revoke(runtime_from(ctx), key_id=key_id)
    emit({"key_id": key_id, "revoked_at": revoked_at}, as_json)


@members.command("create")
def create_member(
    ctx: typer.Context, tenant_id: str, external_id: str, as_json: JsonOpt = False
) -> None:
    """Create a member (idempotent on the external id)."""
    member, created = accounts.create_member(
        runtime_from(ctx), tenant_id=tenant_id, external_id=external_id
    )
    emit({"member_id": member.id, "created": created}, as_json)


@members.command("token")
def member_token(
    ctx: typer.Context, tenant_id: str, member_id: str, as_json: JsonOpt = False
) -> None:
    """Issue a short-lived member token."""
    # The operator's token: no minting API key, so no ``kid``.
    issued = mint_member_token(runtime_from(ctx), tenant_id=tenant_id, member_id=member_id)
    emit({"token": issued.token, "expires_at": issued.expires_at}, as_json)


@keys.command("rotate")
def rotate_vault_keys(
    ctx: typer.Context,
    generate: Annotated[
        bool,
        typer.Option(help="demo instances: add a fresh key to <data dir>/keys.json first"),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-seal every stored secret with the newest vault key.

    Put the new key first in TETHER_VAULT_KEYS (keep the old ones after it), run this, then
    drop the old keys. Old keys keep reading until the rotation has finished.
    """
    from tether.sealed import reseal_all
    from tether.settings import add_demo_vault_key

    if generate:
        add_demo_vault_key(options(ctx).settings())
    runtime = runtime_from(ctx)
    count = reseal_all(runtime)
    emit({"resealed": count, "key_id": runtime.vault.current_key_id}, as_json)
