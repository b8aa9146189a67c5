"""``tether demo``, ``serve`` and ``migrate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tether.cli.app import console, options, parts, runtime_from

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKER_THREADS = 2  # tether.jobs.worker.DEFAULT_THREADS, without importing huey here


def register(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(serve)
    app.command()(migrate)


def demo(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="interface to listen on")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="port to listen on")] = DEFAULT_PORT,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its state")] = Path(
        ".tether"
    ),
) -> None:
    """Run everything on one machine: SQLite, embedded worker, sandbox sources, seeded tenant."""
    from tether.identity.app_links import demo_app_link

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    settings = (
        options(ctx)
        .settings(
            data_dir=data_dir,
            demo=True,
            webhooks_allow_private=True,  # a receiver on this machine works in the demo
            public_base_url=f"http://{shown_host}:{port}",
            log_json=False,
        )
        .with_demo_keys()
    )
    built = parts(ctx)
    runtime = built.build_runtime(settings)
    built.ensure_directory(runtime)
    creds = built.seed_demo(runtime)
    console.rule("[bold green]tether demo")
    console.print(f"API          {creds.base_url}/v1  (docs: {creds.base_url}/docs)")
    page = demo_app_link(runtime, tenant_id=creds.tenant_id, member_id=creds.member_id)
    console.print(f"Member page  {page.url}", soft_wrap=True)
    console.print(
        f"             (opens once, until {page.expires_at:%H:%M} UTC; rerun for a new one)"
    )
    console.print(f"Tenant key   {creds.api_key}", soft_wrap=True)
    console.print(f"Console      {creds.base_url}/console  (sign in with the tenant key)")
    console.print(f"clientKey    {creds.client_key}  (the health SDK's)", soft_wrap=True)
    console.print(f"Member id    {creds.member_id}")
    console.print(f"Member token {creds.member_token}", soft_wrap=True)
    console.print(f"Saved to     {(settings.data_dir / 'demo.json').resolve()} (mode 0600)")
    console.rule()
    built.serve(runtime, host=host, port=port, worker_threads=DEFAULT_WORKER_THREADS)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="interface to listen on")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="port to listen on")] = DEFAULT_PORT,
    data_dir: Annotated[Path | None, typer.Option(help="data directory")] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="consume the job queue in this process (--no-worker: `tether worker` does)",
        ),
    ] = True,
    threads: Annotated[
        int, typer.Option(min=1, help="embedded worker threads")
    ] = DEFAULT_WORKER_THREADS,
) -> None:
    """Run the API server (secrets from TETHER_SECRET_KEY and TETHER_VAULT_KEYS)."""
    runtime = runtime_from(ctx, data_dir=data_dir)
    built = parts(ctx)
    built.ensure_directory(runtime)
    built.serve(runtime, host=host, port=port, worker_threads=threads if worker else 0)


def migrate(ctx: typer.Context) -> None:
    """Upgrade the database to the newest schema."""
    from tether.store.db import Database
    from tether.store.migrate import current_revision, upgrade

    settings = options(ctx).settings()
    db = Database(settings.resolved_database_url)
    upgrade(db.engine)
    console.print(f"database at revision [bold]{current_revision(db.engine)}[/bold]")
