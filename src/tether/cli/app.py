"""The ``tether`` command line: operators' and developers' entry point.

Every command is a thin adapter: it builds the settings and runtime, calls one service
function, and renders the result (a Rich table, or JSON with ``--json``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tether.errors import ConfigurationError, ProblemError
from tether.settings import KEYS_FILE, Settings, load_settings

app = typer.Typer(
    name="tether",
    help="Connection manager for consumer health data (SMART on FHIR).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@dataclass
class GlobalOptions:
    config: Path | None
    data_dir: Path | None
    database_url: str | None

    def settings(self, **overrides: Any) -> Settings:
        base = {"data_dir": self.data_dir, "database_url": self.database_url}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return load_settings(self.config, **base)


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
    ctx.obj = GlobalOptions(config=config, data_dir=data_dir, database_url=database_url)


def options(ctx: typer.Context) -> GlobalOptions:
    obj: GlobalOptions = ctx.find_root().obj
    return obj


def runtime_from(ctx: typer.Context, **overrides: Any) -> Any:
    """The runtime for operator commands: secrets from the environment, or from the data
    directory's keys file when this is a ``tether demo`` instance."""
    from tether.runtime import build_runtime

    settings = options(ctx).settings(**overrides)
    if (settings.data_dir / KEYS_FILE).exists():
        settings = settings.with_demo_keys()
    return build_runtime(settings)


def emit(data: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        for key, value in data.items():
            console.print(f"[bold]{key}[/bold]: {value}")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def main() -> None:
    from tether.cli import commands  # noqa: F401 - registers the commands

    try:
        app()
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise SystemExit(2) from None
    except ProblemError as exc:
        err_console.print(f"[red]{exc.title}:[/red] {exc.detail}")
        raise SystemExit(1) from None
