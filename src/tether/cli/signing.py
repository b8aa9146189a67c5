"""``tether keys signing``: tether's own keys for ``private_key_jwt`` (docs/operations.md)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tether.cli.accounts import JsonOpt, keys, problems
from tether.cli.app import console, err_console, runtime_from

if TYPE_CHECKING:
    from tether.signing import SigningKeyView

signing = typer.Typer(
    help="tether's signing keys for private_key_jwt client authentication (its JWKS).",
    no_args_is_help=True,
)


class Alg(StrEnum):
    RS384 = "RS384"
    ES384 = "ES384"


def register(app: typer.Typer) -> None:
    keys.add_typer(signing, name="signing")


def _row(view: SigningKeyView) -> dict[str, Any]:
    return {
        "kid": view.kid,
        "alg": view.alg,
        "state": view.state,
        "active_from": view.active_from.isoformat(),
        "retired_at": view.retired_at.isoformat() if view.retired_at else None,
        "unpublish_at": view.unpublish_at.isoformat() if view.unpublish_at else None,
    }


def _print(views: list[SigningKeyView], as_json: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps([_row(v) for v in views]) + "\n")
        return
    table = Table("kid", "alg", "state", "signs from", "signs until", "unpublished at", title=title)
    for v in views:
        table.add_row(
            v.kid,
            v.alg,
            v.state,
            str(v.active_from),
            str(v.retired_at or ""),
            str(v.unpublish_at or ""),
        )
    console.print(table)


@signing.command("create")
def create(
    ctx: typer.Context,
    alg: Annotated[Alg, typer.Option(help="RS384 or ES384")] = Alg.RS384,
    as_json: JsonOpt = False,
) -> None:
    """Create the first signing key of an algorithm; it is published and used at once."""
    from tether import signing as service

    runtime = runtime_from(ctx)
    with problems(as_json):
        view = service.create_key(runtime, alg=alg.value)
    _print([view], as_json, "signing key created")
    if not as_json:
        err_console.print(f"JWKS URL to register at health systems: {runtime.settings.jwks_url}")


@signing.command("rotate")
def rotate(
    ctx: typer.Context,
    alg: Annotated[Alg | None, typer.Option(help="only this algorithm (default: all)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A new key per algorithm: published now, signing after TETHER_SIGNING_KEY_ACTIVATION_DELAY;
    the old key keeps signing until then and stays published for the grace period after."""
    from tether import signing as service

    runtime = runtime_from(ctx)
    with problems(as_json):
        views = service.rotate_keys(runtime, alg=alg.value if alg else None)
    _print(views, as_json, "new signing keys")


@signing.command("list")
def list_keys(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every signing key with its state (never a private key)."""
    from tether import signing as service

    views = service.list_keys(runtime_from(ctx))
    _print(views, as_json, f"{len(views)} signing keys")
