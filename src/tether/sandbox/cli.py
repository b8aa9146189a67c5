"""``tether sandbox``: serve the sandbox on its own port, and set its knobs.

The server mounts the sandbox at ``/sandbox`` like ``tether serve`` does, so URLs have
the same shape either way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from tether.sandbox.config import (
    DEFAULT_ADMIN_SECRET,
    DEFAULT_SEED,
    SandboxConfig,
    default_clients,
)

MOUNT = "/sandbox"


def register(app: typer.Typer) -> None:
    """Add the ``sandbox`` command group to tether's CLI."""
    group = typer.Typer(
        help="The built-in SMART-on-FHIR sandbox data source.",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @group.callback()
    def serve(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
        public_url: Annotated[
            str | None,
            typer.Option(help="Absolute URL of the mount (default http://HOST:PORT/sandbox)."),
        ] = None,
        redirect_uri: Annotated[
            list[str] | None,
            typer.Option(help="Allowed client redirect URI (repeatable, exact match)."),
        ] = None,
        admin_secret: Annotated[
            str, typer.Option(envvar="TETHER_SANDBOX_ADMIN_SECRET", help="Bearer secret of /admin.")
        ] = DEFAULT_ADMIN_SECRET,
        seed: Annotated[int, typer.Option(help="Synthetic data seed.")] = DEFAULT_SEED,
        state_path: Annotated[
            Path | None, typer.Option(help="SQLite file keeping codes and tokens across restarts.")
        ] = None,
        client_jwks_uri: Annotated[
            str | None,
            typer.Option(
                help="JWKS URL of the confidential client `tether` (its tether's "
                "/.well-known/jwks.json), for the sources that require private_key_jwt."
            ),
        ] = None,
    ) -> None:
        """Serve the sandbox alone (when no subcommand is given)."""
        if ctx.invoked_subcommand is not None:
            return
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Mount

        from tether.sandbox.app import create_sandbox_app

        config = SandboxConfig(
            public_url=public_url or f"http://{host}:{port}{MOUNT}",
            admin_secret=admin_secret,
            seed=seed,
            state_path=state_path,
            clients=default_clients(jwks_uri=client_jwks_uri),
        )
        if redirect_uri:
            config.redirect_uris = list(redirect_uri)
        sandbox = create_sandbox_app(config)
        Console().print(
            f"sandbox at [bold]{config.public_url}[/bold]; sources: "
            + ", ".join(f"{config.public_url}/{s.id}/fhir" for s in config.sources)
        )
        uvicorn.run(
            Starlette(routes=[Mount(MOUNT, sandbox)]), host=host, port=port, log_level="warning"
        )

    @group.command("knobs")
    def knobs(
        source: Annotated[str, typer.Argument(help="Source id, e.g. sandbox-clinic.")],
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="name=value (repeatable); without it, show the knobs."),
        ] = None,
        url: Annotated[
            str, typer.Option(help="URL of the sandbox mount.")
        ] = "http://127.0.0.1:8100/sandbox",
        admin_secret: Annotated[
            str, typer.Option(envvar="TETHER_SANDBOX_ADMIN_SECRET")
        ] = DEFAULT_ADMIN_SECRET,
        reset: Annotated[bool, typer.Option(help="Back to defaults first.")] = False,
    ) -> None:
        """Show or change a source's fault knobs through its admin endpoint."""
        changes = {}
        for item in set_ or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"expected name=value, got {item!r}")
            changes[name.strip()] = value.strip()
        endpoint = f"{url.rstrip('/')}/{source}/admin/knobs"
        headers = {"Authorization": f"Bearer {admin_secret}"}
        with httpx.Client(timeout=10) as http:
            if reset:
                http.post(f"{url.rstrip('/')}/{source}/admin/reset", headers=headers)
            answer = (
                http.patch(endpoint, json=changes, headers=headers)
                if changes
                else http.get(endpoint, headers=headers)
            )
        if answer.status_code != 200:
            Console(stderr=True).print(f"[red]{answer.status_code}[/red] {answer.text}")
            raise typer.Exit(1)
        Console().print_json(json.dumps(answer.json()))

    app.add_typer(group, name="sandbox")
