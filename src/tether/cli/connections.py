"""``tether connections``: a member's connections, over HTTP with the SDK (``tether.client``).

Unlike the operator commands, these talk to a running tether (``--url``) as a member
(``--token``, or ``TETHER_MEMBER_TOKEN``); ``--demo`` takes both from the ``demo.json`` that
``tether demo`` saved in the data directory. ``--json`` prints machine-readable output on
stdout (``connect`` prints one JSON object per line: the link, then the connection); progress
and messages go to stderr.

Exit codes: 0 success; 1 any other error (server error, rate limit, a wait that timed out, a
sync that ended in ERROR); 2 invalid input; 3 authentication (bad, expired or missing token);
4 not found; 5 conflict (the lifecycle does not allow it now, a retired source); 6 network
(tether could not be reached).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether.cli.app import console, err_console, options
from tether.client import (
    AuthenticationError,
    ConflictError,
    ConnectionManager,
    MemberConnection,
    NetworkError,
    NotFoundError,
    SourceType,
    Status,
    SyncStatus,
    TenantClient,
    TetherError,
    ValidationError,
)

DEFAULT_URL = "http://127.0.0.1:8000"
DEMO_FILE = "demo.json"
DEFAULT_WAIT = 300.0  # seconds
DEFAULT_INTERVAL = 1.0  # seconds between polls

EXIT_OTHER, EXIT_VALIDATION, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_NETWORK = range(1, 7)
EXIT_CODES: list[tuple[type[TetherError], int]] = [
    (ValidationError, EXIT_VALIDATION),
    (AuthenticationError, EXIT_AUTH),
    (NotFoundError, EXIT_NOT_FOUND),
    (ConflictError, EXIT_CONFLICT),
    (NetworkError, EXIT_NETWORK),
]

connections = typer.Typer(
    help="A member's connections over HTTP (exit codes: 2 invalid input, 3 authentication, "
    "4 not found, 5 conflict, 6 network, 1 other).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(connections, name="connections")


UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help=f"tether's base URL [default: {DEFAULT_URL}, or demo.json's with --demo]",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="TETHER_MEMBER_TOKEN", help="the member's token", show_default=False
    ),
]
DemoOpt = Annotated[
    bool,
    typer.Option("--demo", help="URL and member token from <data dir>/demo.json (tether demo)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0, help="seconds to wait before giving up")
]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.01, help="seconds between polls while waiting")
]
ConnectionArg = Annotated[str, typer.Argument(help="the data source's id, e.g. sandbox-clinic")]


def exit_code(error: TetherError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_OTHER


def wire(value: Any) -> Any:
    """SDK results as JSON values, in the REST API's camelCase shapes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            _camel(f.name): wire(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.repr or f.name == "redirect_url"
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [wire(v) for v in value]
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")  # one line each: JSON Lines for scripts
    sys.stdout.flush()


def _demo_credentials(ctx: typer.Context) -> dict[str, str]:
    path: Path = options(ctx).settings().data_dir / DEMO_FILE
    try:
        data = json.loads(path.read_text())
        return {
            "base_url": str(data["base_url"]),
            "member_token": str(data["member_token"]),
            "api_key": str(data["api_key"]),
        }
    except (OSError, ValueError, KeyError) as exc:
        err_console.print(f"[red]error:[/red] cannot read {path}: run `tether demo` first ({exc})")
        raise typer.Exit(EXIT_VALIDATION) from None


@contextmanager
def sdk_errors(as_json: bool) -> Iterator[None]:
    """Every SDK error becomes a message on stderr (and JSON on stdout) and an exit code."""
    try:
        yield
    except TetherError as exc:
        if as_json:
            _print_json({"error": {**exc.problem, "status": exc.status}})
        code = f" [{exc.code}]" if exc.code else ""
        err_console.print(f"[red]error:[/red] {exc.detail}{code}", soft_wrap=True)
        raise typer.Exit(exit_code(exc)) from None


@contextmanager
def tenant_client(
    ctx: typer.Context, url: str | None, api_key: str | None, demo: bool, as_json: bool
) -> Iterator[TenantClient]:
    """The tenant's TenantClient (API key); SDK errors become messages and exit codes."""
    if demo:
        creds = _demo_credentials(ctx)
        url = url or creds["base_url"]
        api_key = api_key or creds["api_key"]
    if not api_key:
        err_console.print(
            "[red]error:[/red] no API key: pass --api-key, set TETHER_API_KEY, or use --demo"
        )
        raise typer.Exit(EXIT_AUTH)
    with sdk_errors(as_json), TenantClient(url or DEFAULT_URL, api_key) as tether:
        yield tether


@contextmanager
def member_client(
    ctx: typer.Context, url: str | None, token: str | None, demo: bool, as_json: bool
) -> Iterator[ConnectionManager]:
    """The member's ConnectionManager; every SDK error becomes a message and an exit code."""
    if demo:
        creds = _demo_credentials(ctx)
        url = url or creds["base_url"]
        token = token or creds["member_token"]
    if not token:
        err_console.print(
            "[red]error:[/red] no member token: pass --token, set TETHER_MEMBER_TOKEN, or use "
            "--demo"
        )
        raise typer.Exit(EXIT_AUTH)
    with sdk_errors(as_json), ConnectionManager(url or DEFAULT_URL, token) as tether:
        yield tether


def _progress(as_json: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
        transient=False,
    )


def _counts(conn: MemberConnection) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(conn.resource_counts.items())) or "none"


def _show(conn: MemberConnection) -> None:
    rows = {
        "id": conn.id,
        "name": conn.name,
        "type": conn.type.value,
        "status": conn.status.value,
        "syncStatus": conn.sync_status.value,
        "statusUpdated": wire(conn.status_updated),
        "lastSynced": wire(conn.last_synced) or "never",
        "nextSync": wire(conn.next_sync) or "-",
        "resources": f"{conn.total_resources} ({_counts(conn)})",
    }
    for key, value in rows.items():
        console.print(f"[bold]{key}[/bold]: {value}", soft_wrap=True)
    for error in conn.sync_errors:
        console.print(f"[yellow]sync error[/yellow] {error.code}: {error.text}", soft_wrap=True)


@connections.command("list")
def list_connections(
    ctx: typer.Context,
    status: Annotated[
        list[Status] | None, typer.Option("--status", help="filter (repeatable)")
    ] = None,
    sync_status: Annotated[
        list[SyncStatus] | None, typer.Option("--sync-status", help="filter (repeatable)")
    ] = None,
    type: Annotated[
        list[SourceType] | None, typer.Option("--type", help="filter (repeatable)")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """getMemberConnections: every connection of the member, with statuses and errors."""
    with member_client(ctx, url, token, demo, as_json) as tether:
        found = tether.get_member_connections(status=status, sync_status=sync_status, type=type)
    if as_json:
        _print_json(wire(found))
        return
    table = Table(title=f"{len(found)} connections")
    for name in ("id", "type", "status", "syncStatus"):  # values that must stay whole
        table.add_column(name, no_wrap=True)
    for name in ("resources", "lastSynced", "errors"):
        table.add_column(name, overflow="fold")
    for conn in found:
        table.add_row(
            conn.id,
            conn.type.value,
            conn.status.value,
            conn.sync_status.value,
            str(conn.total_resources),
            f"{conn.last_synced:%Y-%m-%d %H:%M}" if conn.last_synced else "never",
            ", ".join(conn.sync_error_codes),
        )
    console.print(table if found else "no connections")


@connections.command("show")
def show(
    ctx: typer.Context,
    connection_id: ConnectionArg,
    url: UrlOpt = None,
    token: TokenOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One connection: status, sync status, resource counts, sync errors."""
    with member_client(ctx, url, token, demo, as_json) as tether:
        conn = tether.get_connection(connection_id)
    if as_json:
        _print_json(wire(conn))
    else:
        _show(conn)


@connections.command("connect")
def connect(
    ctx: typer.Context,
    source: ConnectionArg,
    return_url: Annotated[
        str | None, typer.Option(help="where the browser lands after (tenant allow-list)")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="open the link in this machine's browser")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="wait until the connection is CONNECTED")
    ] = True,
    timeout: TimeoutOpt = DEFAULT_WAIT,
    interval: IntervalOpt = DEFAULT_INTERVAL,
    url: UrlOpt = None,
    token: TokenOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """getOauthUrl: print the link that connects (or re-establishes) SOURCE, then wait.

    The member opens the link in a browser and approves at the source; this command polls
    until the connection is CONNECTED with a newer statusUpdated. With --json it prints
    {"redirectUrl": …} at once, then {"connection": …} when connected.
    """
    with member_client(ctx, url, token, demo, as_json) as tether:
        try:
            before: datetime | None = tether.get_connection(source).status_updated
        except NotFoundError:
            before = None
        link = tether.get_oauth_url(source, return_url=return_url).redirect_url
        if as_json:
            _print_json({"redirectUrl": link})
        else:
            err_console.print("Open this link in a browser to connect (single use, expires soon):")
            console.print(link, soft_wrap=True)
        if open_browser:
            webbrowser.open(link)
        if not wait:
            return

        def connected(conn: MemberConnection) -> bool:
            newer = before is None or conn.status_updated > before
            return conn.status is Status.CONNECTED and newer

        with err_console.status("waiting for the member to approve at the source…") as spinner:
            if as_json:
                spinner.stop()
            conn = tether.wait_until(
                source, connected, timeout=timeout, interval=interval, missing_ok=True
            )
    if as_json:
        _print_json({"connection": wire(conn)})
    else:
        err_console.print(f"[green]connected[/green] {conn.id} ({conn.name})")


@connections.command("sync")
def sync(
    ctx: typer.Context,
    connection_id: ConnectionArg,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait for the sync to finish, with progress")
    ] = False,
    timeout: TimeoutOpt = DEFAULT_WAIT,
    interval: IntervalOpt = DEFAULT_INTERVAL,
    url: UrlOpt = None,
    token: TokenOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Sync now (asynchronous); with --wait, until it has RETRIEVED (exit 1 on ERROR)."""
    with member_client(ctx, url, token, demo, as_json) as tether:
        previous = tether.get_connection(connection_id)
        conn = tether.sync_now(connection_id)
        if wait:
            with _progress(as_json) as bar:
                task = bar.add_task("sync requested", total=None)
                done = _sync_finished(
                    previous,
                    conn,
                    lambda c: bar.update(
                        task,
                        description=f"{c.sync_status.value.lower()}: {c.total_resources} resources",
                    ),
                )
                conn = tether.wait_until(connection_id, done, timeout=timeout, interval=interval)
    if as_json:
        _print_json(wire(conn))
    else:
        _show(conn)
    if wait and conn.sync_status is SyncStatus.ERROR:
        raise typer.Exit(EXIT_OTHER)


def _sync_finished(
    previous: MemberConnection,
    requested: MemberConnection,
    report: Callable[[MemberConnection], None],
) -> Callable[[MemberConnection], bool]:
    """Whether the sync asked for has finished: the API has no job id, so a finished run is
    recognised by a terminal syncStatus after a new run was seen (RETRIEVING or PENDING
    polled, or lastSynced, syncErrors or nextSync changed since before the request)."""
    seen_running = False
    settled = (SyncStatus.RETRIEVED, SyncStatus.ERROR)

    def done(conn: MemberConnection) -> bool:
        nonlocal seen_running
        report(conn)
        if conn.status is not Status.CONNECTED:
            return True  # disconnected, expired or deleted meanwhile: nothing more will come
        if conn.sync_status not in settled:
            seen_running = True
            return False
        return (
            seen_running
            or conn.last_synced != previous.last_synced
            or conn.sync_errors != previous.sync_errors
            or conn.next_sync not in (previous.next_sync, requested.next_sync)
        )

    return done


@connections.command("create")
def create(
    ctx: typer.Context,
    connection_id: ConnectionArg,
    username: Annotated[str, typer.Option(prompt=True, help="the member's portal username")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            envvar="TETHER_PORTAL_PASSWORD",
            help="the portal password (prompted, hidden, when not given) [env var: "
            "TETHER_PORTAL_PASSWORD]",
        ),
    ],
    url: UrlOpt = None,
    token: TokenOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """createConnection: connect a BASIC source with the member's portal credentials."""
    with member_client(ctx, url, token, demo, as_json) as tether:
        conn = tether.create_connection(connection_id, username, password)
    if as_json:
        _print_json(wire(conn))
    else:
        console.print(f"{conn.id}: {conn.status.value} / {conn.sync_status.value}")


@connections.command("disconnect")
def disconnect(
    ctx: typer.Context,
    connection_id: ConnectionArg,
    url: UrlOpt = None,
    token: TokenOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """disconnectConnection: stop retrieval and revoke the tokens; the data stays."""
    with member_client(ctx, url, token, demo, as_json) as tether:
        update = tether.disconnect_connection(connection_id)
    if as_json:
        _print_json(wire(update))
    else:
        console.print(f"{connection_id}: {update.status.value} (data kept)")


@connections.command("delete")
def delete(
    ctx: typer.Context,
    connection_id: ConnectionArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait until the data is deleted, with progress")
    ] = False,
    timeout: TimeoutOpt = DEFAULT_WAIT,
    interval: IntervalOpt = DEFAULT_INTERVAL,
    url: UrlOpt = None,
    token: TokenOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """deleteConnection: revoke the tokens now and delete the connection's data
    (asynchronously; --wait until syncStatus is DATA_DELETED). Asks first unless --yes."""
    if not yes:
        if as_json or not sys.stdin.isatty():
            err_console.print("[red]error:[/red] deleting needs --yes when not interactive")
            raise typer.Exit(EXIT_VALIDATION)
        typer.confirm(f"Delete {connection_id} and all of its data?", abort=True)
    with member_client(ctx, url, token, demo, as_json) as tether:
        total = tether.get_connection(connection_id).total_resources
        update = tether.delete_connection(connection_id)
        result: Any = update
        if wait:
            with _progress(as_json) as bar:
                task = bar.add_task(f"deleting {total} resources", total=None)
                result = tether.wait_until(
                    connection_id,
                    lambda c: c.sync_status is SyncStatus.DATA_DELETED,
                    timeout=timeout,
                    interval=interval,
                )
                bar.update(task, description=f"deleted {total} resources")
    if as_json:
        _print_json(wire(result))
    else:
        console.print(f"{connection_id}: {update.status.value}, {result.sync_status.value}")
