"""``tether tenants|keys|members``: account administration for operators.

Every command takes ``--json``. A refused input (a return URL RFC 8252 does not allow, an
unknown tenant) exits with status 1: with ``--json`` the RFC 9457 problem document is printed
on stdout (its ``field`` names the input), otherwise its title and detail on stderr.
Each command imports its service when it runs (``tether --help`` does not import them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tether.cli.app import console, emit, err_console, options, runtime_from
from tether.errors import ProblemError

if TYPE_CHECKING:
    from tether.accounts.tenants import TenantView

tenants = typer.Typer(help="Tenants (the health apps using this tether).", no_args_is_help=True)
keys = typer.Typer(help="Tenant API keys and the token vault's keys.", no_args_is_help=True)
members = typer.Typer(help="Members of a tenant.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tenants, name="tenants")
    app.add_typer(keys, name="keys")
    app.add_typer(members, name="members")


JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ReturnUrlOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--return-url",
        help="allow-listed return URL (repeatable): https, loopback http, or a private-use "
        "scheme such as com.example.app:/connected",
    ),
]
OriginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-origin",
        help="browser origin of the tenant's app (repeatable): the completion page's "
        "postMessage target and GraphQL CORS",
    ),
]
OPERATOR = "operator:cli"


@contextmanager
def problems(as_json: bool) -> Iterator[None]:
    """A refused input as a problem document (``--json``) or a line on stderr; exit 1."""
    try:
        yield
    except ProblemError as exc:
        if as_json:
            sys.stdout.write(json.dumps(exc.to_problem(), indent=2) + "\n")
        else:
            err_console.print(f"[red]{exc.title}:[/red] {exc.detail}")
        raise typer.Exit(1) from None


def tenant_data(view: TenantView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "return_urls": list(view.return_urls),
        "allowed_origins": list(view.allowed_origins),
        "created": view.created,
        "disabled": view.disabled,
        "disabled_at": view.disabled_at,
    }


@tenants.command("create")
def create_tenant(
    ctx: typer.Context,
    name: str,
    return_url: ReturnUrlOpt = None,
    allowed_origin: OriginOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant and its first API key (shown once)."""
    from tether.identity import api_keys

    runtime = runtime_from(ctx)
    with problems(as_json):
        key = api_keys.register_tenant(
            runtime, name=name, return_urls=return_url or [], allowed_origins=allowed_origin or []
        )
    emit({"tenant_id": key.tenant_id, "key_id": key.key_id, "api_key": key.plaintext}, as_json)


@tenants.command("list")
def list_tenants(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every tenant, oldest first."""
    from tether.accounts import tenants as tenant_admin

    found = tenant_admin.list_tenants(runtime_from(ctx))
    if as_json:
        sys.stdout.write(json.dumps([tenant_data(t) for t in found], default=str) + "\n")
        return
    table = Table("id", "name", "status", "return URLs", "origins", title=f"{len(found)} tenants")
    for view in found:
        status = "disabled" if view.disabled else "live"
        table.add_row(
            view.id,
            view.name,
            status,
            "\n".join(view.return_urls),
            "\n".join(view.allowed_origins),
        )
    console.print(table)


@tenants.command("show")
def show_tenant(ctx: typer.Context, tenant_id: str, as_json: JsonOpt = False) -> None:
    """One tenant's settings."""
    from tether.accounts import tenants as tenant_admin

    with problems(as_json):
        view = tenant_admin.tenant(runtime_from(ctx), tenant_id=tenant_id)
    emit(tenant_data(view), as_json)


@tenants.command("update")
def update_tenant(
    ctx: typer.Context,
    tenant_id: str,
    name: Annotated[str | None, typer.Option(help="the tenant's new name")] = None,
    return_url: ReturnUrlOpt = None,
    clear_return_urls: Annotated[
        bool, typer.Option("--clear-return-urls", help="remove every return URL")
    ] = False,
    allowed_origin: OriginOpt = None,
    clear_allowed_origins: Annotated[
        bool, typer.Option("--clear-allowed-origins", help="remove every browser origin")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change a tenant's name, return URLs or browser origins (each list replaces the old
    one; what is not given stays). Audited; all or nothing."""
    from tether.accounts import tenants as tenant_admin

    with problems(as_json):
        view = tenant_admin.update_tenant(
            runtime_from(ctx),
            tenant_id=tenant_id,
            actor=OPERATOR,
            name=name,
            return_urls=[] if clear_return_urls else return_url,
            allowed_origins=[] if clear_allowed_origins else allowed_origin,
        )
    emit(tenant_data(view), as_json)


@tenants.command("disable")
def disable_tenant(ctx: typer.Context, tenant_id: str, as_json: JsonOpt = False) -> None:
    """Disable a tenant: its API keys, member tokens, SDK tokens, app links and page sessions
    stop at once, and its members' connections stop syncing. Data stays."""
    from tether.accounts import tenants as tenant_admin

    with problems(as_json):
        view = tenant_admin.set_disabled(
            runtime_from(ctx), tenant_id=tenant_id, actor=OPERATOR, disabled=True
        )
    emit(tenant_data(view), as_json)


@tenants.command("enable")
def enable_tenant(ctx: typer.Context, tenant_id: str, as_json: JsonOpt = False) -> None:
    """Enable a disabled tenant again (credentials that have not expired work again)."""
    from tether.accounts import tenants as tenant_admin

    with problems(as_json):
        view = tenant_admin.set_disabled(
            runtime_from(ctx), tenant_id=tenant_id, actor=OPERATOR, disabled=False
        )
    emit(tenant_data(view), as_json)


@keys.command("list")
def list_keys(ctx: typer.Context, tenant_id: str, as_json: JsonOpt = False) -> None:
    """A tenant's API keys (never their secrets), revoked ones too."""
    from tether.identity import api_keys

    with problems(as_json):
        found = api_keys.list_api_keys(runtime_from(ctx), tenant_id=tenant_id)
    rows = [
        {"key_id": k.key_id, "name": k.name, "created": k.created, "revoked_at": k.revoked_at}
        for k in found
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, default=str) + "\n")
        return
    table = Table("key id", "name", "created", "revoked", title=f"{len(rows)} API keys")
    for key in found:
        table.add_row(key.key_id, key.name, str(key.created), str(key.revoked_at or ""))
    console.print(table)


@keys.command("create")
def create_key(
    ctx: typer.Context, tenant_id: str, name: str = "", as_json: JsonOpt = False
) -> None:
    """Create another API key for a tenant (shown once)."""
    from tether.identity import api_keys

    key = api_keys.issue_api_key(runtime_from(ctx), tenant_id=tenant_id, name=name)
    emit({"key_id": key.key_id, "api_key": key.plaintext}, as_json)


@keys.command("revoke")
def revoke_key(ctx: typer.Context, key_id: str, as_json: JsonOpt = False) -> None:
    """Revoke an API key: it stops working at once."""
    from tether.identity import api_keys

    revoked_at = api_keys.revoke(runtime_from(ctx), key_id=key_id)
    emit({"key_id": key_id, "revoked_at": revoked_at}, as_json)


@members.command("create")
def create_member(
    ctx: typer.Context, tenant_id: str, external_id: str, as_json: JsonOpt = False
) -> None:
    """Create a member (idempotent on the external id)."""
    from tether.accounts import members as accounts

    member, created = accounts.create_member(
        runtime_from(ctx), tenant_id=tenant_id, external_id=external_id
    )
    emit({"member_id": member.id, "created": created}, as_json)


@members.command("token")
def member_token(
    ctx: typer.Context, tenant_id: str, member_id: str, as_json: JsonOpt = False
) -> None:
    """Issue a short-lived member token."""
    from tether.identity.member_tokens import mint_member_token

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
