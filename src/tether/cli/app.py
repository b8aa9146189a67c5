"""The ``tether`` command line: operators' and developers' entry point.

Every command is a thin adapter: it builds the settings and runtime, calls one service
function, and renders the result (a Rich table, or JSON with ``--json``). What only the
composition root can build (the runtime, the job queue, the ASGI server) reaches the commands
as :class:`Parts`, handed to :func:`build_cli` by :mod:`tether.bootstrap`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Console

from tether.settings import KEYS_FILE, Settings, load_settings

if TYPE_CHECKING:  # the commands import the application only when they run
    from tether.jobs import Jobs
    from tether.runtime import Runtime, Service

console = Console()
err_console = Console(stderr=True)


class Parts(Protocol):
    """What the commands need from the composition root."""

    def build_runtime(self, settings: Settings, *, migrate: bool = True) -> Runtime: ...

    def build_jobs(self, runtime: Runtime, *, queue_name: str = ...) -> Jobs: ...

    def ensure_directory(self, runtime: Runtime) -> None: ...

    def build_sync_engine(self, runtime: Runtime) -> Service: ...

    def serve(self, runtime: Runtime, *, host: str, port: int, worker_threads: int = 0) -> None: ...

    def seed_demo(self, runtime: Runtime) -> Any: ...

    def serve_metrics(self, runtime: Runtime) -> None: ...


@dataclass
class GlobalOptions:
    config: Path | None
    data_dir: Path | None
    database_url: str | None
    parts: Parts

    def settings(self, **overrides: Any) -> Settings:
        base = {"data_dir": self.data_dir, "database_url": self.database_url}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return load_settings(self.config, **base)


def build_cli(parts: Parts) -> typer.Typer:
    """The ``tether`` command with every command group, wired to ``parts``."""
    from tether.cli import (
        accounts,
        connections,
        directory,
        records,
        server,
        signing,
        webhooks,
        worker,
    )
    from tether.sandbox.cli import register as register_sandbox

    app = typer.Typer(
        name="tether",
        help="Connection manager for consumer health data (SMART on FHIR).",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _global(
        ctx: typer.Context,
        config: Annotated[
            Path | None, typer.Option(help="dotenv-style config file (KEY=value lines)")
        ] = None,
        data_dir: Annotated[
            Path | None, typer.Option(help="data directory [env: TETHER_DATA_DIR]")
        ] = None,
        database_url: Annotated[
            str | None, typer.Option(help="SQLAlchemy URL [env: TETHER_DATABASE_URL]")
        ] = None,
    ) -> None:
        ctx.obj = GlobalOptions(
            config=config, data_dir=data_dir, database_url=database_url, parts=parts
        )

    for module in (server, accounts, signing, directory, connections, records, webhooks, worker):
        module.register(app)
    register_sandbox(app)
    return app


def options(ctx: typer.Context) -> GlobalOptions:
    obj: GlobalOptions = ctx.find_root().obj
    return obj


def parts(ctx: typer.Context) -> Parts:
    return options(ctx).parts


def runtime_from(ctx: typer.Context, **overrides: Any) -> Runtime:
    """The runtime for operator commands: secrets from the environment, or from the data
    directory's keys file when this is a ``tether demo`` instance."""
    settings = options(ctx).settings(**overrides)
    if (settings.data_dir / KEYS_FILE).exists():
        settings = settings.with_demo_keys()
    return parts(ctx).build_runtime(settings)


def emit(data: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        for key, value in data.items():
            console.print(f"[bold]{key}[/bold]: {value}")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)
