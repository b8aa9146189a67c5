"""``tether sources``: import and search the data-source directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from tether.cli.app import console, emit, runtime_from
from tether.domain import SourceType

sources = typer.Typer(help="The data-source directory.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sources, name="sources")


@sources.command("import")
def import_sources(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="directory file (YAML or JSON)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Validate FILE, then upsert its sources (a bad entry stops the import, naming itself)."""
    from tether.connections.retirement import import_directory

    runtime = runtime_from(ctx)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
        transient=False,
    ) as bar:
        task = bar.add_task("importing sources", total=None)
        count = import_directory(
            runtime,
            file,
            on_total=lambda n: bar.update(task, total=n),
            progress=lambda n: bar.advance(task, n),
        )
    emit({"imported": count}, as_json)


@sources.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument()] = None,
    type: Annotated[SourceType | None, typer.Option("--type")] = None,
    near: Annotated[str | None, typer.Option(help="ZIP code or 'lat,lon'")] = None,
    limit: int = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the directory like searchDataSources."""
    from tether.directory import service

    page = service.search(
        runtime_from(ctx),
        query=query,
        source_type=type,
        near=service.parse_near(near, None),
        limit=limit,
    )
    rows = [
        {"id": s.id, "name": s.name, "type": s.type, "city": s.city, "state": s.state}
        for s in page.items
    ]
    if as_json:
        emit({"total": page.total, "items": rows}, True)
        return
    table = Table("id", "name", "type", "city", "state", title=f"{page.total} sources")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in ("id", "name", "type", "city", "state")))
    console.print(table)
