"""No secret in the database or the logs; concurrent refreshes hit the source once."""

import multiprocessing
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, text

from tests.conftest import MemberCtx
from tether.bootstrap import build_runtime
from tether.connections.tokens import refresh_connection
from tether.logging import configure_logging
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.sealed import connection_binding
from tether.settings import Settings
from tether.store.models import Base, Connection
from tether.testing.flow import connect

CLINIC = "sandbox-clinic"


def _all_rows_text(runtime: Runtime) -> str:
    chunks = []
    with runtime.db.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(text(f"SELECT * FROM {table.name}")):
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


def test_no_secret_in_database_or_logs(
    client, member: MemberCtx, runtime: Runtime, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="DEBUG", json_output=True)
    result = connect(client, member.headers, CLINIC, patient="clinic-1")
    assert result.status_code == "success"
    with runtime.db.read() as session:
        conn = session.scalars(select(Connection)).one()
    refresh_connection(runtime, connection_pk=conn.id, stale_sealed=None)
    with runtime.db.read() as session:
        conn = session.scalars(select(Connection)).one()
    query = parse_qs(urlsplit(result.callback_url).query)
    secrets = {
        "code": query["code"][0],
        "state": query["state"][0],
        "launch token": result.redirect_url.rsplit("/", 1)[1],
        "launch url": result.redirect_url,
        "access token": runtime.vault.decrypt(
            conn.access_token or "", binding=connection_binding(conn.id, "access_token")
        ),
        "refresh token": runtime.vault.decrypt(
            conn.refresh_token or "", binding=connection_binding(conn.id, "refresh_token")
        ),
        "member token": member.token,
        "api key secret": member.tenant.api_key.split("_", 2)[2],
        "client secret": "sandbox-secret",
    }
    logs = capfd.readouterr()
    captured = logs.out + logs.err
    assert "/oauth/callback" in captured  # the logs did record the flow
    stored = _all_rows_text(runtime)
    raw = b""
    if runtime.db.sqlite:
        with runtime.db.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(FULL)")
        path = Path(runtime.settings.resolved_database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    for name, secret in secrets.items():
        assert secret not in captured, f"{name} leaked into the logs"
        assert secret not in stored, f"{name} stored in plaintext"
        assert secret.encode() not in raw, f"{name} in the database file"


def _refresh_in_process(settings: Settings, pk: int, seen: str, barrier, results) -> None:
    runtime = build_runtime(settings, migrate=False)
    barrier.wait(timeout=60)
    results.put(str(refresh_connection(runtime, connection_pk=pk, stale_sealed=seen)))


def test_two_processes_refreshing_refresh_once_at_the_source(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    connect(client, member.headers, CLINIC, patient="clinic-1")
    with runtime.db.read() as session:
        conn = session.scalars(select(Connection)).one()
    before = sandbox.counters(CLINIC).refreshes
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=_refresh_in_process,
            args=(runtime.settings, conn.id, conn.access_token, barrier, results),
        )
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(90)
        assert proc.exitcode == 0
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["already_fresh", "refreshed"]
    assert sandbox.counters(CLINIC).refreshes - before == 1
