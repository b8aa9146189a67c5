"""``tether demo``, ``serve`` and ``migrate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tether.cli.app import app, console, options, runtime_from

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKER_THREADS = 2  # tether.jobs.worker.DEFAULT_THREADS, without importing huey here


def _run(runtime: object, host: str, port: int, *, worker_threads: int = 0) -> None:
    import uvicorn

    from tether.api.app import create_app
    from tether.jobs import EmbeddedWorker, Jobs
    from tether.logging import configure_logging
    from tether.runtime import Runtime

    assert isinstance(runtime, Runtime)
    if worker_threads:
        assert isinstance(runtime.jobs, Jobs)  # attached by build_runtime
        # Started and stopped with the app (Runtime.start/stop in the lifespan).
        runtime.services.append(EmbeddedWorker(runtime.jobs, threads=worker_threads))
    configure_logging(level=runtime.settings.log_level, json_output=runtime.settings.log_json)
    uvicorn.run(
        create_app(runtime),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


@app.command()
def demo(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="interface to listen on")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="port to listen on")] = DEFAULT_PORT,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its state")] = Path(
        ".tether"
    ),
) -> None:
    """Run everything on one machine: SQLite, embedded worker, sandbox sources, seeded tenant."""
    from tether.demo import seed
    from tether.directory.files import ensure_directory
    from tether.runtime import build_runtime

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    settings = (
        options(ctx)
        .settings(
            data_dir=data_dir,
            demo=True,
            public_base_url=f"http://{shown_host}:{port}",
            log_json=False,
        )
        .with_demo_keys()
    )
    runtime = build_runtime(settings)
    ensure_directory(runtime)
    creds = seed(runtime)
    console.rule("[bold green]tether demo")
    console.print(f"API          {creds.base_url}/v1  (docs: {creds.base_url}/docs)")
    from tether.web.links import demo_app_link

    page = demo_app_link(runtime, tenant_id=creds.tenant_id, member_id=creds.member_id)
    console.print(f"Member page  {page.url}", soft_wrap=True)
    console.print(
        f"             (opens once, until {page.expires_at:%H:%M} UTC; rerun for a new one)"
    )
    console.print(f"Tenant key   {creds.api_key}", soft_wrap=True)
    console.print(f"Member id    {creds.member_id}")
    console.print(f"Member token {creds.member_token}", soft_wrap=True)
    console.print(f"Saved to     {(settings.data_dir / 'demo.json').resolve()} (mode 0600)")
    console.rule()
    _run(runtime, host, port, worker_threads=DEFAULT_WORKER_THREADS)


@app.command()
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
    from tether.directory.files import ensure_directory

    runtime = runtime_from(ctx, data_dir=data_dir)
    ensure_directory(runtime)
    _run(runtime, host, port, worker_threads=threads if worker else 0)


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Upgrade the database to the newest schema."""
    from tether.store.db import Database
    from tether.store.migrate import current_revision, upgrade

    settings = options(ctx).settings()
    db = Database(settings.resolved_database_url)
    upgrade(db.engine)
    console.print(f"database at revision [bold]{current_revision(db.engine)}[/bold]")
