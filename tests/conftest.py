"""Shared fixtures: every test that takes ``db_url`` runs on SQLite and on PostgreSQL.

PostgreSQL and Redis are the throwaway servers that ``scripts/with-services`` starts (``make
test`` does). Without them, tests that need them are skipped locally; under
``TETHER_TEST_REQUIRE_SERVICES=1`` (``make test`` and CI) a missing service is an error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tether.accounts import members, tenants
from tether.bootstrap import build_runtime
from tether.identity import api_keys, member_tokens
from tether.jobs import EmbeddedWorker, Jobs
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.settings import Settings
from tether.store.db import make_engine
from tether.store.migrate import upgrade
from tether.store.models import Base
from tether.testing.live_server import LiveServer, free_port
from tether.vault import generate_key

POSTGRES_URL = os.environ.get("TETHER_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TETHER_TEST_REDIS_URL")
REQUIRE_SERVICES = os.environ.get("TETHER_TEST_REQUIRE_SERVICES") == "1"


def need_service(url: str | None, name: str) -> str:
    if url:
        return url
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (TETHER_TEST_REQUIRE_SERVICES=1) but not configured")
    pytest.skip(f"{name} not running; use `make test`")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(autouse=True)
def _fresh_source_tally() -> None:
    """Counts of source requests are per process: a test starts with none left by another."""
    from tether.metrics import SOURCE_TALLY

    SOURCE_TALLY.drain()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "tether.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    admin_url = need_service(POSTGRES_URL, "PostgreSQL")
    name = f"tether_test_{_worker()}"
    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def truncate_all(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty database: a fresh SQLite file, or the worker's PostgreSQL database."""
    if request.param == "sqlite":
        target = tmp_path / "tether.db"
        shutil.copy(sqlite_template, target)
        yield f"sqlite:///{target}"
        return
    url = request.getfixturevalue("postgres_database")
    yield url
    truncate_all(url)


def make_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """A test's settings: its database, a SQLite queue file beside it (unless ``overrides``
    say otherwise), a free port, fresh keys."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": db_url,
        "queue_url": f"sqlite:///{tmp_path / 'queue.db'}",
        "public_base_url": f"http://127.0.0.1:{free_port()}",
        "secret_key": SecretStr("test-secret-key-" + "x" * 16),
        "vault_keys": [SecretStr(generate_key())],
        "sandbox_admin_secret": SecretStr("sandbox-admin"),
        "http_timeout": 5.0,
        "log_json": True,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings, migrate=False)
    yield rt
    if isinstance(rt.jobs, Jobs):
        rt.jobs.close()
    rt.db.dispose()


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[EmbeddedWorker]:
    """An embedded worker consuming ``runtime.jobs`` (the test's SQLite queue file) with fast
    polling and no periodic sweeps (``runtime.jobs.run_sweeps()`` sweeps on demand), and the
    sync engine its ``sync`` task hands runs to, as in ``tether serve``."""
    from tether.bootstrap import build_sync_engine

    assert isinstance(runtime.jobs, Jobs)
    engine = build_sync_engine(runtime)
    embedded = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)
    engine.start()
    embedded.start()
    yield embedded
    embedded.stop()
    engine.stop()


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    from tether.bootstrap import create_app, ensure_directory

    ensure_directory(runtime)
    return create_app(runtime)


@pytest.fixture
def sandbox(app: FastAPI) -> Sandbox:
    """The in-process controller of the sandbox mounted in ``app`` (knobs, counters)."""
    controller: Sandbox = app.state.sandbox
    return controller


@pytest.fixture
def server(app: FastAPI, runtime: Runtime) -> Iterator[LiveServer]:
    """tether over real HTTP on loopback, at ``settings.public_base_url``."""
    port = int(runtime.settings.public_base_url.rsplit(":", 1)[1])
    live = LiveServer(app, port=port)
    live.start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@dataclass
class TenantCtx:
    tenant_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class MemberCtx:
    tenant: TenantCtx
    member_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(runtime: Runtime, name: str = "Acme Health") -> TenantCtx:
    with runtime.db.write() as session:
        tenant = tenants.create_tenant(
            session, name=name, return_urls=["https://app.example.test/connected"]
        )
        _, key = api_keys.create_api_key(session, tenant_id=tenant.id, pepper=runtime.secret_key)
    return TenantCtx(tenant.id, key)


def make_member(runtime: Runtime, tenant: TenantCtx, external_id: str = "alice") -> MemberCtx:
    with runtime.db.write() as session:
        member, _ = members.ensure_member(
            session, tenant_id=tenant.tenant_id, external_id=external_id
        )
        issued = member_tokens.issue_member_token(
            session,
            member_id=member.id,
            tenant_id=tenant.tenant_id,
            secret_key=runtime.secret_key,
            ttl=600,
        )
    return MemberCtx(tenant, member.id, issued.token)


@pytest.fixture
def tenant(runtime: Runtime) -> TenantCtx:
    return make_tenant(runtime)


@pytest.fixture
def member(runtime: Runtime, tenant: TenantCtx) -> MemberCtx:
    return make_member(runtime, tenant)


@pytest.fixture
def other_tenant(runtime: Runtime) -> TenantCtx:
    return make_tenant(runtime, "Other App")


@pytest.fixture
def other_member(runtime: Runtime, tenant: TenantCtx) -> MemberCtx:
    return make_member(runtime, tenant, "bob")


def run_async(coroutine: Any) -> Any:
    """``asyncio.run`` on a thread of its own: Playwright's sync API leaves an event loop
    running in the test thread of any xdist worker that ran a browser test, where
    ``asyncio.run`` would refuse."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a ``python -m tether …`` child process on the test's database,
    queue and keys (nothing else ``TETHER_`` leaks in from the outer environment)."""
    assert settings.secret_key is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        {
            "TETHER_DATABASE_URL": settings.resolved_database_url,
            "TETHER_QUEUE_URL": settings.resolved_queue_url,
            "TETHER_SECRET_KEY": settings.secret_key.get_secret_value(),
            "TETHER_VAULT_KEYS": ",".join(k.get_secret_value() for k in settings.vault_keys),
            "TETHER_DATA_DIR": str(settings.data_dir),
            "TETHER_PUBLIC_BASE_URL": settings.public_base_url,
            **extra,  # overrides the above
        }
    )
    return env
