"""``/metrics`` as Prometheus scrapes it: guarded, valid (checked by promtool), and telling the
truth about syncs, source requests, refreshes, the API and the queue — with bounded labels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from tests.conftest import MemberCtx
from tests.jobs.conftest import wait_until
from tests.observability.conftest import SCRAPE, check_exposition, samples, value
from tests.sync.helpers import connected, reload
from tether.bootstrap import build_runtime, create_app
from tether.jobs import EmbeddedWorker, Jobs
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.settings import Settings
from tether.store.models import SyncSchedule
from tether.sync.run import run_sync
from tether.testing.live_server import LiveServer, free_port
from tether.vault import generate_key

CLINIC = "sandbox-clinic"
ROOT = Path(__file__).resolve().parents[2]


def scrape(client: httpx.Client) -> str:
    answer = client.get("/metrics", headers=SCRAPE)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.text


def test_metrics_need_the_bearer_secret(client: httpx.Client, member: MemberCtx) -> None:
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    # A member token or an API key is not the metrics secret.
    assert client.get("/metrics", headers=member.headers).status_code == 401
    assert client.get("/metrics", headers=member.tenant.headers).status_code == 401
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_metrics_are_off_without_a_secret(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        public_base_url=f"http://127.0.0.1:{port}",
        secret_key=SecretStr("k" * 32),
        vault_keys=[SecretStr(generate_key())],
        sandbox_enabled=False,
    )
    runtime = build_runtime(settings)
    live = LiveServer(create_app(runtime), port=port)
    live.start()
    try:
        answer = httpx.get(f"{live.url}/metrics", headers=SCRAPE)
        assert answer.status_code == 404
        assert answer.json()["code"] == "METRICS_OFF"
    finally:
        live.stop()
        assert isinstance(runtime.jobs, Jobs)
        runtime.jobs.close()
        runtime.db.dispose()


def test_a_sync_shows_in_the_metrics(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    before = samples(scrape(client))
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, page_size=50)
    assert report is not None and report.status == "RETRIEVED"
    client.get(f"/v1/connections/{CLINIC}", headers=member.headers)
    client.get("/v1/connections/no-such-source", headers=member.headers)
    text = scrape(client)
    check_exposition(text)
    after = samples(text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tether_sync_runs_total", source=CLINIC, outcome="RETRIEVED") == 1
    assert grew("tether_sync_resources_written_total", source=CLINIC) == report.written
    assert grew("tether_sync_duration_seconds_count", source=CLINIC) == 1
    fetched = sandbox.counters(CLINIC).fhir_requests
    assert fetched > 0
    # Every FHIR request of the sync was counted (2xx), plus discovery and the token exchange.
    assert grew("tether_source_requests_total", source=CLINIC, outcome="2xx") >= fetched
    assert grew("tether_source_request_duration_seconds_count", source=CLINIC) >= fetched
    # API requests by route template: the path's ids never become label values.
    assert (
        grew(
            "tether_http_requests_total",
            method="GET",
            route="/v1/connections/{connection_id}",
            status="200",
        )
        == 1
    )
    assert (
        grew(
            "tether_http_requests_total",
            method="GET",
            route="/v1/connections/{connection_id}",
            status="404",
        )
        == 1
    )
    for secret in (member.member_id, member.token, member.tenant.api_key, "clinic-1"):
        assert secret not in text


def test_fleet_gauges_count_connections_and_the_queue(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")  # queues its first sync
    with runtime.db.write() as session:  # and it is overdue by a minute
        session.execute(
            update(SyncSchedule)
            .where(SyncSchedule.connection_id == conn.id)
            .values(due_at=runtime.clock() - timedelta(minutes=1))
        )
    time.sleep(0.2)  # the job has waited a little (no worker runs in this test)
    found = samples(scrape(client))
    assert (
        value(found, "tether_connections", status="CONNECTED", sync_status="PENDING", source=CLINIC)
        == 1
    )
    assert value(found, "tether_queue_depth") >= 1
    assert value(found, "tether_queue_oldest_wait_seconds") >= 0.2
    assert value(found, "tether_sync_backlog_seconds") >= 60


def test_throttling_and_refreshes_are_counted(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    from tether.connections.tokens import refresh_connection

    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    before = samples(scrape(client))
    sandbox.set_knobs(CLINIC, {"rate_429": 1.0, "retry_after": 600})
    try:
        run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    finally:
        sandbox.reset(CLINIC)
    refresh_connection(runtime, connection_pk=conn.id, stale_sealed=None)
    after = samples(scrape(client))
    assert (
        value(after, "tether_source_requests_total", source=CLINIC, outcome="429")
        - value(before, "tether_source_requests_total", source=CLINIC, outcome="429")
        >= 1
    )
    assert (
        value(after, "tether_sync_runs_total", source=CLINIC, outcome="ERROR")
        - value(before, "tether_sync_runs_total", source=CLINIC, outcome="ERROR")
        == 1
    )
    assert (
        value(after, "tether_token_refreshes_total", source=CLINIC, outcome="refreshed")
        - value(before, "tether_token_refreshes_total", source=CLINIC, outcome="refreshed")
        == 1
    )
    assert reload(runtime, conn.id).status == "CONNECTED"


def test_jobs_are_counted_with_their_wait(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    before = samples(scrape(client))
    assert isinstance(runtime.jobs, Jobs)
    worker = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)
    worker.start()
    try:
        conn = connected(client, member, runtime, CLINIC, "clinic-1")
        wait_until(lambda: reload(runtime, conn.id).sync_status == "RETRIEVED", timeout=60)
    finally:
        worker.stop()
    after = samples(scrape(client))
    assert (
        value(after, "tether_jobs_total", task="sync", outcome="ok")
        - value(before, "tether_jobs_total", task="sync", outcome="ok")
        == 1
    )
    assert (
        value(after, "tether_job_wait_seconds_count", task="sync")
        - value(before, "tether_job_wait_seconds_count", task="sync")
        == 1
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_worker_process_serves_its_own_metrics_port(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, tmp_path: Path
) -> None:
    port = free_port()
    settings = runtime.settings
    env = {
        **os.environ,
        "TETHER_DATABASE_URL": settings.resolved_database_url,
        "TETHER_QUEUE_URL": settings.resolved_queue_url,
        "TETHER_SECRET_KEY": settings.secret_key.get_secret_value(),
        "TETHER_VAULT_KEYS": ",".join(k.get_secret_value() for k in settings.vault_keys),
        "TETHER_PUBLIC_BASE_URL": settings.public_base_url,
        "TETHER_DATA_DIR": str(tmp_path / "worker"),
        "TETHER_METRICS_PORT": str(port),
        "TETHER_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tether",
            "worker",
            "--sweep-interval",
            "0",
            "--poll-interval",
            "0.05",
        ],
        env=env,
        cwd=ROOT,
    )
    try:
        conn = connected(client, member, runtime, CLINIC, "clinic-1")
        wait_until(lambda: reload(runtime, conn.id).sync_status == "RETRIEVED", timeout=60)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        check_exposition(text)
        found = samples(text)
        assert value(found, "tether_jobs_total", task="sync", outcome="ok") == 1
        assert value(found, "tether_sync_runs_total", source=CLINIC, outcome="RETRIEVED") == 1
        # A worker exposes its own counters; the fleet gauges come from the API process.
        assert value(found, "tether_connections") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
