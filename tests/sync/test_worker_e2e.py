"""Syncs run on the job queue by themselves, on SQLite and Redis queues, and survive SIGKILL."""

import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, MemberCtx, make_member, need_service, process_env
from tests.sync.helpers import connected, reload, stored, wait_for
from tether.jobs import EmbeddedWorker, Jobs, make_huey
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.store.models import utcnow

CLINIC = "sandbox-clinic"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_connect_is_followed_by_a_sync_on_the_worker(
    client, member: MemberCtx, runtime: Runtime, queue: str
) -> None:
    if queue == "redis":
        url = need_service(REDIS_URL, "Redis")
        assert isinstance(runtime.jobs, Jobs)
        runtime.jobs.close()
        runtime.jobs = Jobs(runtime, huey=make_huey(url, name=f"test-{uuid.uuid4().hex}"))
    assert isinstance(runtime.jobs, Jobs)
    worker = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)
    worker.start()
    try:
        conn = connected(client, member, runtime, CLINIC, "clinic-1")
        wait_for(lambda: reload(runtime, conn.id).sync_status == "RETRIEVED")
        assert reload(runtime, conn.id).resource_counts == stored(runtime, conn.id)
        # "Sync now" goes through the queue too.
        before = reload(runtime, conn.id).last_synced_at
        answer = client.post(f"/v1/connections/{CLINIC}/sync", headers=member.headers)
        assert answer.status_code == 202
        wait_for(lambda: reload(runtime, conn.id).last_synced_at != before)
        # Delete is asynchronous on the queue as well.
        client.delete(f"/v1/connections/{CLINIC}", headers=member.headers)
        wait_for(lambda: reload(runtime, conn.id).sync_status == "DATA_DELETED")
        assert stored(runtime, conn.id) == {}
    finally:
        worker.stop()
        if queue == "redis":
            runtime.jobs.huey.flush()


def test_sync_now_of_a_disconnected_connection_is_a_conflict(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    connected(client, member, runtime, CLINIC, "clinic-1")
    client.post(f"/v1/connections/{CLINIC}/disconnect", headers=member.headers)
    answer = client.post(f"/v1/connections/{CLINIC}/sync", headers=member.headers)
    assert answer.status_code == 409 and answer.json()["code"] == "NOT_CONNECTED"


def test_worker_killed_mid_sync_is_recovered_by_the_sweeper(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    env = process_env(runtime.settings)
    sandbox.set_knobs(CLINIC, {"latency_ms": 40})
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tether",
            "worker",
            "--threads",
            "1",
            "--sweep-interval",
            "3600",
            "--poll-interval",
            "0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        conn = connected(client, member, runtime, CLINIC, "clinic-large")
        wait_for(lambda: sum(stored(runtime, conn.id).values()) > 500, timeout=90)
        assert reload(runtime, conn.id).sync_status == "RETRIEVING"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    sandbox.reset(CLINIC)
    partial = sum(stored(runtime, conn.id).values())
    stuck = reload(runtime, conn.id)
    assert stuck.sync_status == "RETRIEVING"  # what the crash left behind
    assert isinstance(runtime.jobs, Jobs)
    runtime.jobs.huey.flush()  # and the queue lost its message too
    assert runtime.jobs.run_sweeps()["due-syncs"] == 0  # heartbeat still fresh: not yet
    runtime.clock = lambda: utcnow() + timedelta(minutes=10)
    assert runtime.jobs.run_sweeps()["due-syncs"] == 1
    worker = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)
    worker.start()
    try:
        wait_for(lambda: reload(runtime, conn.id).sync_status == "RETRIEVED", timeout=120)
    finally:
        worker.stop()
    recovered = stored(runtime, conn.id)
    assert sum(recovered.values()) > partial
    assert reload(runtime, conn.id).resource_counts == recovered
    # The recovered data is exactly what a clean sync of the same patient brings.
    other = make_member(runtime, member.tenant, "dave")
    clean = connected(client, other, runtime, CLINIC, "clinic-large")
    from tether.sync.run import run_sync

    runtime.jobs = None
    run_sync(runtime, connection_pk=clean.id, epoch=clean.grant_epoch)
    assert stored(runtime, clean.id) == recovered
    assert sum(recovered.values()) >= 20_000
