"""The composition root: the one module that builds tether from its parts.

It builds the runtime (settings → database, vault, job queue), installs tether's tasks and
sweeps (:mod:`tether.tasks`, an explicit list) in the job registry, assembles the ASGI app
(REST, the OAuth and member pages, GraphQL, the sandbox) and the ``tether`` command line.
Everything below it is built from what this module passes down; nothing below imports it
(``tests/test_layers.py`` pins the import graph)::

    bootstrap                                   (this module, tether.demo, tether.testing)
      ↑
    adapters   api · graphql · web · cli · tasks
      ↑
    http       the HTTP adapters' shared kit (deps, RFC 9457, middleware, origins)
      ↑
    services   identity · accounts · directory · connections · sync · data · audit · jobs
      ↑
    ground     settings · errors · domain · ids · logging · vault · sealed · store ·
               runtime · oauth · fhir
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import typer
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from tether import api, graphql, tasks, tracing
from tether.cli.app import build_cli
from tether.connections import fleet
from tether.connections.retirement import import_directory
from tether.directory.schema import BUNDLED_DIRECTORY
from tether.heap import freeze_start_up
from tether.http import openapi, rfc9457
from tether.http.middleware import RequestContextMiddleware
from tether.http.rate_limits import RateLimitMiddleware
from tether.ids import new_secret
from tether.jobs import REGISTRY, EmbeddedWorker, Jobs, TaskRegistry, make_huey
from tether.jobs.backends import DEFAULT_QUEUE_NAME
from tether.logging import configure_logging
from tether.metrics import SnapshotCollector, registry_with
from tether.runtime import Runtime
from tether.settings import Settings
from tether.store.db import Database
from tether.store.migrate import upgrade
from tether.store.models import DataSource
from tether.sync.engine import SyncEngine
from tether.vault import Vault
from tether.web import console, member_page, oauth
from tether.webhooks import delivery as webhook_delivery

METRICS_SNAPSHOT_TTL = 10.0  # seconds the fleet gauges are reused between scrapes


def install_tasks(registry: TaskRegistry = REGISTRY) -> None:
    """Declare tether's own tasks and sweeps (idempotent: the same functions again are fine)."""
    for task in tasks.TASKS:
        registry.add(task)
    for sweep in tasks.SWEEPS:
        registry.add(sweep)


def build_jobs(runtime: Runtime, *, queue_name: str = DEFAULT_QUEUE_NAME) -> Jobs:
    """The job queue at ``settings.resolved_queue_url`` (namespace ``queue_name``), with
    tether's tasks and any plugin's declared in :data:`~tether.jobs.REGISTRY`."""
    install_tasks()
    return Jobs(runtime, huey=make_huey(runtime.settings.resolved_queue_url, name=queue_name))


def build_runtime(settings: Settings, *, migrate: bool = True) -> Runtime:
    """Check the secrets, open the database (migrating it if asked), the vault and the queue."""
    settings.require_secrets()
    db = Database(settings.resolved_database_url)
    if migrate:
        upgrade(db.engine)
    vault = Vault([k.get_secret_value() for k in settings.vault_keys])
    runtime = Runtime(settings=settings, db=db, vault=vault)
    runtime.jobs = build_jobs(runtime)
    # Events are written in the change's transaction; their deliveries start after it commits.
    db.after_commit.append(webhook_delivery.Waker(runtime))
    if settings.otlp_endpoint and not tracing.enabled():
        tracing.configure_otlp(settings.otlp_endpoint, service_name=settings.otel_service_name)
    return runtime


def metrics_registry(runtime: Runtime, *, fleet_gauges: bool = True) -> CollectorRegistry:
    """This process's metrics, plus (``fleet_gauges``) the gauges read from ``runtime``'s
    database and queue at scrape time, cached for ``METRICS_SNAPSHOT_TTL`` seconds."""
    if not fleet_gauges:
        return registry_with()
    return registry_with(SnapshotCollector(lambda: fleet.gauges(runtime), ttl=METRICS_SNAPSHOT_TTL))


def serve_metrics(runtime: Runtime, registry: CollectorRegistry | None = None) -> None:
    """Serve metrics on ``TETHER_METRICS_PORT`` in a background thread, when it is set (a
    ``tether worker`` exposes only its own counters: the fleet gauges come from ``serve``)."""
    port = runtime.settings.metrics_port
    if port is None:
        return
    from prometheus_client import start_http_server

    start_http_server(
        port,
        addr=runtime.settings.metrics_host,
        registry=registry or metrics_registry(runtime, fleet_gauges=False),
    )


def ensure_directory(runtime: Runtime) -> None:
    """At start-up: import the configured directory file (ending access to the sources it
    retires), or the bundled one into an empty store."""
    configured = runtime.settings.directory_file
    if configured is not None:
        import_directory(runtime, configured)
        return
    with runtime.db.read() as session:
        empty = not session.scalar(select(func.count()).select_from(DataSource))
    if empty or runtime.settings.demo:
        import_directory(runtime, BUNDLED_DIRECTORY)


def create_app(runtime: Runtime) -> FastAPI:
    """The HTTP application over ``runtime``: REST, the OAuth and member pages, GraphQL and
    (when enabled) the sandbox; the runtime's services start and stop with it."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="tether",
        version="0.1.0",
        summary="Connection manager for consumer health data (SMART on FHIR).",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics_registry = metrics_registry(runtime)
    rfc9457.install(app)
    openapi.install(app)
    for router in api.routers():
        app.include_router(router)
    app.include_router(oauth.router)
    app.include_router(member_page.router)
    app.include_router(console.router)
    app.include_router(graphql.create_router())
    if runtime.settings.sandbox_enabled:
        _mount_sandbox(app, runtime)
    cors = graphql.cors_options(runtime.settings, runtime)
    app.add_middleware(graphql.GraphQLCORSMiddleware, **cors)
    app.add_middleware(RateLimitMiddleware, settings=runtime.settings)
    app.add_middleware(RequestContextMiddleware)
    return app


def _mount_sandbox(app: FastAPI, runtime: Runtime) -> None:
    """Serve the bundled sandbox data sources at ``/sandbox`` on the same host and port."""
    from tether.sandbox import SandboxConfig, create_sandbox_app  # the data generator is big
    from tether.sandbox.config import default_clients

    settings = runtime.settings
    secret = settings.sandbox_admin_secret
    sandbox_app = create_sandbox_app(
        SandboxConfig(
            public_url=settings.sandbox_url,
            redirect_uris=[settings.callback_url],
            # The sources that want private_key_jwt verify against tether's own JWKS.
            clients=default_clients(jwks_uri=settings.jwks_url),
            # Without a configured secret the admin endpoints get an unguessable one.
            admin_secret=secret.get_secret_value() if secret else new_secret(32),
            state_path=settings.data_dir / "sandbox.sqlite",
        )
    )
    app.mount("/sandbox", sandbox_app)
    app.state.sandbox = sandbox_app.sandbox


def build_sync_engine(runtime: Runtime) -> SyncEngine:
    """The worker process's sync engine (``TETHER_SYNC_CONCURRENCY`` syncs in flight); once
    started, the queue's ``sync`` task hands runs to it."""
    return SyncEngine(runtime)


def serve(runtime: Runtime, *, host: str, port: int, worker_threads: int = 0) -> None:
    """Run the HTTP app with uvicorn until stopped; with ``worker_threads``, an embedded worker
    consumes the job queue in this process (started and stopped with the app)."""
    import uvicorn

    if worker_threads:
        assert isinstance(runtime.jobs, Jobs)  # attached by build_runtime
        # Started in this order, stopped in reverse: the queue stops handing syncs over
        # before the engine winds down the ones in flight.
        runtime.services.append(build_sync_engine(runtime))
        runtime.services.append(EmbeddedWorker(runtime.jobs, threads=worker_threads))
    configure_logging(level=runtime.settings.log_level, json_output=runtime.settings.log_json)
    app = create_app(runtime)
    serve_metrics(runtime, app.state.metrics_registry)
    freeze_start_up()  # the app and the runtime live as long as the process
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


class Assembly:
    """What the command line needs from the composition root (:class:`tether.cli.app.Parts`)."""

    build_runtime = staticmethod(build_runtime)
    build_jobs = staticmethod(build_jobs)
    build_sync_engine = staticmethod(build_sync_engine)
    ensure_directory = staticmethod(ensure_directory)
    serve = staticmethod(serve)
    serve_metrics = staticmethod(serve_metrics)

    @staticmethod
    def seed_demo(runtime: Runtime) -> Any:
        from tether.demo import seed

        return seed(runtime)


def cli() -> typer.Typer:
    """The ``tether`` command line, wired to this composition root."""
    return build_cli(Assembly())
