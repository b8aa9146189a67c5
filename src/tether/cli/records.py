"""``tether records``: a copy of stored records over HTTP, as FHIR Bulk Data NDJSON files.

``tether records export`` kicks off an export, waits for it and saves its files. With a
member token (``--token``/``TETHER_MEMBER_TOKEN``, or ``--demo``) it is the member's own
records; with the tenant's API key (``--api-key``/``TETHER_API_KEY``) every member's, or one
member's (``--member``). Exit codes as for ``tether connections``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from tether.cli.app import console, err_console
from tether.cli.connections import (
    DemoOpt,
    JsonOpt,
    TimeoutOpt,
    UrlOpt,
    _print_json,
    _progress,
    member_client,
    tenant_client,
    wire,
)
from tether.client import Export

records = typer.Typer(
    help="Copies of stored records (FHIR Bulk Data NDJSON).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(records, name="records")


@records.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="directory for the NDJSON files")] = Path(
        "records"
    ),
    types: Annotated[
        list[str] | None, typer.Option("--type", help="a resource type (repeatable); default all")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            help="only what tether stored after this instant (ISO 8601, with a zone)",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        ),
    ] = None,
    member: Annotated[
        str | None, typer.Option("--member", help="one member's (with --api-key)")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="TETHER_API_KEY", help="the tenant's API key"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="TETHER_MEMBER_TOKEN", help="a member's token"),
    ] = None,
    url: UrlOpt = None,
    demo: DemoOpt = False,
    timeout: TimeoutOpt = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Export records and save them under --out (one or more NDJSON files per type)."""
    result: Export
    with _progress(as_json) as bar:
        task = bar.add_task("exporting", total=None)
        if api_key or member:
            with tenant_client(ctx, url, api_key, demo, as_json) as tether:
                result = tether.export_records(
                    out, member_id=member, types=types, since=since, timeout=timeout
                )
        else:
            with member_client(ctx, url, token, demo, as_json) as manager:
                result = manager.export_records(out, types=types, since=since, timeout=timeout)
        bar.update(task, description=f"exported {result.total} resources")
    if as_json:
        _print_json(wire(result))
        return
    for item in result.files:
        console.print(f"{item.path}  {item.type}  {item.count}")
    err_console.print(
        f"{result.total} resources in {len(result.files)} files; transactionTime "
        f"{result.transaction_time.isoformat()} (pass it as --since next time)"
    )
