"""``tether worker`` as its own process consumes what this process enqueues, and stops on
SIGTERM with exit status 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.jobs.conftest import queue_url, unique_name, wait_until
from tests.jobs.tasks_for_tests import (
    AUDIT_TASK,
    SWEEP_REQUEST,
    SWEPT,
    count_audit,
    write_audit_once,
)
from tether.jobs import Jobs
from tether.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
STOP_BOUND = 10.0  # seconds from SIGTERM to exit


@pytest.fixture
def spawn_worker(
    runtime: Runtime, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(url: str, name: str) -> subprocess.Popen[bytes]:
        settings = runtime.settings
        assert settings.secret_key is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env.update(
            TETHER_DATABASE_URL=settings.resolved_database_url,
            TETHER_QUEUE_URL=url,
            TETHER_SECRET_KEY=settings.secret_key.get_secret_value(),
            TETHER_VAULT_KEYS=",".join(k.get_secret_value() for k in settings.vault_keys),
            TETHER_DATA_DIR=str(settings.data_dir),
        )
        log = (tmp_path / f"worker-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "tether", "worker",
                "--import", "tests.jobs.tasks_for_tests",
                "--queue-name", name,
                "--threads", "1",
                "--sweep-interval", "0.2",
                "--poll-interval", "0.1",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_worker_process_consumes_the_queue_sweeps_and_stops_on_sigterm(
    runtime: Runtime,
    open_jobs: Callable[..., Jobs],
    spawn_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
    kind: str,
) -> None:
    name = unique_name()
    jobs = open_jobs(kind, name)
    write_audit_once(runtime, "orphan", SWEEP_REQUEST)
    proc = spawn_worker(queue_url(runtime, kind), name)
    jobs.enqueue(AUDIT_TASK, marker="from-the-test-process")

    def done() -> bool:
        if proc.poll() is not None:
            output = (tmp_path / "worker-0.log").read_text(errors="replace")
            pytest.fail(f"worker exited with {proc.returncode}:\n{output}")
        return (
            count_audit(runtime, "from-the-test-process") == 1
            and count_audit(runtime, "orphan", SWEPT) == 1
        )

    wait_until(done, timeout=30)
    before = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    # An idle worker stops in about a second; the margin is for a loaded CI machine.
    assert proc.wait(timeout=STOP_BOUND) == 0
    assert time.monotonic() - before < STOP_BOUND
