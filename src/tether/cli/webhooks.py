"""``tether webhooks`` and ``tether events``: the tenant's webhook endpoints and event log, over
HTTP with the SDK's ``TenantClient`` (``--api-key`` or ``TETHER_API_KEY``; ``--demo`` reads
``demo.json``). Same output conventions and exit codes as ``tether connections``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from tether.cli.app import console, err_console
from tether.cli.connections import (
    EXIT_VALIDATION,
    DemoOpt,
    JsonOpt,
    UrlOpt,
    _print_json,
    tenant_client,
    wire,
)
from tether.client import WebhookEndpoint

webhooks = typer.Typer(
    help="The tenant's webhook endpoints over HTTP (docs/webhooks.md).", no_args_is_help=True
)
events_app = typer.Typer(help="The tenant's event log over HTTP.", no_args_is_help=True)

ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="TETHER_API_KEY", help="the tenant's API key", show_default=False
    ),
]
EndpointArg = Annotated[str, typer.Argument(help="the endpoint's id (we_…)")]
EventOpt = Annotated[
    list[str] | None,
    typer.Option("--event", help="an event type to send (repeatable; default: all)"),
]


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks, name="webhooks")
    app.add_typer(events_app, name="events")


def _show(endpoint: WebhookEndpoint, as_json: bool) -> None:
    if as_json:
        data = wire(endpoint)
        if endpoint.secret:
            data["secret"] = endpoint.secret
        _print_json(data)
        return
    rows = {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description or "-",
        "events": ", ".join(endpoint.events) or "all",
        "state": f"disabled: {endpoint.disabled_reason}" if endpoint.disabled else "enabled",
        "failingSince": wire(endpoint.failing_since) or "-",
    }
    for key, value in rows.items():
        console.print(f"[bold]{key}[/bold]: {value}", soft_wrap=True)
    if endpoint.secret:
        console.print(
            f"[bold]secret[/bold]: {endpoint.secret}  (shown only now: keep it in your "
            "receiver's configuration)",
            soft_wrap=True,
        )


@webhooks.command("create")
def create(
    ctx: typer.Context,
    url_arg: Annotated[str, typer.Argument(metavar="URL", help="https URL that receives events")],
    event: EventOpt = None,
    description: Annotated[str, typer.Option(help="what it is for")] = "",
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Register an endpoint; prints its signing secret, once."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        made = tether.create_webhook_endpoint(url_arg, events=event, description=description)
    _show(made, as_json)


@webhooks.command("list")
def list_endpoints(
    ctx: typer.Context,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The tenant's endpoints."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        found = tether.list_webhook_endpoints()
    if as_json:
        _print_json(wire(found))
        return
    table = Table(title=f"{len(found)} webhook endpoints")
    for name in ("id", "state"):
        table.add_column(name, no_wrap=True)
    for name in ("url", "events", "description"):
        table.add_column(name, overflow="fold")
    for e in found:
        state = "disabled" if e.disabled else "enabled"
        table.add_row(e.id, state, e.url, ", ".join(e.events) or "all", e.description)
    console.print(table if found else "no webhook endpoints")


@webhooks.command("show")
def show(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One endpoint."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        found = tether.get_webhook_endpoint(endpoint_id)
    _show(found, as_json)


@webhooks.command("update")
def update(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    new_url: Annotated[str | None, typer.Option("--to-url", help="a new URL")] = None,
    event: EventOpt = None,
    description: Annotated[str | None, typer.Option(help="a new description")] = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="resume or stop deliveries")
    ] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Change an endpoint's URL, event types, description, or enable / disable it."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        changed = tether.update_webhook_endpoint(
            endpoint_id,
            url=new_url,
            events=event,
            description=description,
            disabled=None if enable is None else not enable,
        )
    _show(changed, as_json)


@webhooks.command("delete")
def delete(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove an endpoint and its deliveries (the events stay in the log)."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        tether.delete_webhook_endpoint(endpoint_id)
    if as_json:
        _print_json({"deleted": endpoint_id})
    else:
        err_console.print(f"deleted {endpoint_id}")


@webhooks.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """A new signing secret; the old one keeps signing beside it for 24 hours."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        rotated = tether.rotate_webhook_secret(endpoint_id)
    _show(rotated, as_json)


@webhooks.command("deliveries")
def deliveries(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    state: Annotated[
        str | None, typer.Option(help="pending, delivered or failed", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The endpoint's deliveries, newest first, with the last answer."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        page = tether.list_webhook_deliveries(endpoint_id, state=state, limit=limit)
    if as_json:
        _print_json(wire(page))
        return
    table = Table(title=f"{len(page.items)} deliveries")
    for name in ("event", "type", "state", "attempts", "last answer", "next attempt"):
        table.add_column(name, overflow="fold")
    for d in page.items:
        answer = "-"
        if d.last_attempt:
            answer = str(d.last_status or "-") + (f" {d.last_error}" if d.last_error else "")
        table.add_row(
            d.event_id,
            d.event_type,
            d.state,
            str(d.attempts),
            answer,
            wire(d.next_attempt) or "-",
        )
    console.print(table)


@webhooks.command("replay")
def replay(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    since: Annotated[str, typer.Option(help="ISO 8601 with an offset, e.g. 2026-12-01T00:00:00Z")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Deliver again every event since a moment (at most 10,000 a call)."""
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        err_console.print("[red]error:[/red] --since must be ISO 8601 with an offset (or Z)")
        raise typer.Exit(EXIT_VALIDATION)
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        queued = tether.replay_webhook_endpoint(endpoint_id, moment)
    if as_json:
        _print_json({"queued": queued})
    else:
        console.print(f"{queued} events queued for delivery again")


@webhooks.command("redeliver")
def redeliver(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="the event's id (evt_…)")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Deliver one event again to every enabled endpoint that wants it."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        queued = tether.redeliver_event(event_id)
    if as_json:
        _print_json({"queued": queued})
    else:
        console.print(f"queued for {queued} endpoint(s)")


@events_app.command("list")
def list_events(
    ctx: typer.Context,
    type: Annotated[list[str] | None, typer.Option("--type", help="repeatable")] = None,
    member_id: Annotated[str | None, typer.Option("--member-id")] = None,
    after: Annotated[str | None, typer.Option(help="an event id: the events after it")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    demo: DemoOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The event log, oldest first (with --json, one object: items and nextAfter)."""
    with tenant_client(ctx, url, api_key, demo, as_json) as tether:
        page = tether.list_events(type=type, member_id=member_id, after=after, limit=limit)
    if as_json:
        _print_json(
            {
                "items": [
                    {"type": e.type, "timestamp": wire(e.timestamp), "data": e.data}
                    for e in page.items
                ],
                "nextAfter": page.next_after,
            }
        )
        return
    table = Table(title=f"{len(page.items)} events")
    for name in ("when", "type", "member", "connection", "status", "syncStatus"):
        table.add_column(name, overflow="fold")
    for e in page.items:
        table.add_row(
            wire(e.timestamp),
            e.type,
            str(e.data.get("externalId") or e.data.get("memberId") or "-"),
            str(e.data.get("connectionId") or "-"),
            str(e.data.get("status") or "-"),
            str(e.data.get("syncStatus") or "-"),
        )
    console.print(table)
    if page.next_after:
        err_console.print(f"more: --after {page.next_after}")
