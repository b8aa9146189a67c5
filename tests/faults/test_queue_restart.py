"""Redis (the job queue) restarted with jobs queued, and gone while members connect: the
database stays the truth, so the sweeps re-drive what the queue lost, and the worker that
lived through the outage keeps consuming once Redis is back."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import REQUIRE_SERVICES, MemberCtx, make_member, make_settings
from tests.sync.helpers import connected, reload, wait_for
from tether.bootstrap import build_sync_engine
from tether.jobs import EmbeddedWorker, Jobs
from tether.runtime import Runtime
from tether.settings import Settings
from tether.testing.live_server import free_port

CLINIC = "sandbox-clinic"


class PrivateRedis:
    """A throwaway redis-server without persistence: a restart loses every queued job."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def queued(self) -> int:
        """Messages waiting: huey keeps its queue in a list (a sorted set with priorities)."""
        client = redis.Redis.from_url(self.url)
        sizes = {b"list": client.llen, b"zset": client.zcard}
        return sum(
            sizes[kind](key) for key in client.keys("*") if (kind := client.type(key)) in sizes
        )


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("redis-server is required (TETHER_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("redis-server is not installed; use `make test`")
    server = PrivateRedis(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, private_redis: PrivateRedis) -> Settings:
    """The suite's settings, with the job queue on the private Redis."""
    return make_settings(db_url, tmp_path, queue_url=private_redis.url)


def test_jobs_lost_with_the_queue_are_re_driven_and_the_worker_outlives_it(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    private_redis: PrivateRedis,
) -> None:
    assert isinstance(runtime.jobs, Jobs)
    # A sync is queued (no worker yet), then Redis restarts: the message is gone.
    first = connected(client, member, runtime, CLINIC, "clinic-1")
    assert private_redis.queued() >= 1
    private_redis.stop()
    # While Redis is down, another member connects: the grant is stored, the enqueue fails
    # quietly (the member sees success), and nothing is queued anywhere.
    other = make_member(runtime, member.tenant, "bob")
    second = connected(client, other, runtime, CLINIC, "clinic-2")
    private_redis.start()
    assert private_redis.queued() == 0
    for conn in (first, second):
        assert reload(runtime, conn.id).sync_status == "PENDING"

    engine = build_sync_engine(runtime)
    worker = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)
    engine.start()
    worker.start()
    try:
        # The due-syncs sweep finds both in the database and queues them again.
        assert runtime.jobs.run_sweeps()["due-syncs"] == 2
        for conn in (first, second):
            wait_for(lambda c=conn: reload(runtime, c.id).sync_status == "RETRIEVED")

        # Redis goes away under the running worker and comes back: "Sync now" still runs.
        synced = reload(runtime, first.id).last_synced_at
        private_redis.stop()
        time.sleep(1.5)
        private_redis.start()
        time.sleep(1.0)
        answer = client.post(f"/v1/connections/{CLINIC}/sync", headers=member.headers)
        assert answer.status_code == 202
        wait_for(lambda: (reload(runtime, first.id).last_synced_at or synced) > synced)
    finally:
        worker.stop()
        engine.stop()
