"""The embedded worker: consumer threads and the sweeper inside this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.jobs.conftest import QUEUES, wait_until
from tests.jobs.tasks_for_tests import (
    AUDIT_TASK,
    RAN,
    SWEEP_REQUEST,
    SWEPT,
    count_audit,
    write_audit_once,
)
from tether.jobs import EmbeddedWorker, Jobs, RetryLater
from tether.runtime import Runtime

Open = Callable[..., Jobs]
Start = Callable[..., EmbeddedWorker]


@pytest.mark.parametrize("kind", QUEUES)
def test_enqueued_task_runs_in_the_worker_and_writes_to_the_database(
    runtime: Runtime, open_jobs: Open, start_worker: Start, kind: str
) -> None:
    jobs = open_jobs(kind)
    start_worker(jobs)
    jobs.enqueue(AUDIT_TASK, marker="m1")
    jobs.enqueue(AUDIT_TASK, marker="m1")  # a duplicate message is harmless
    jobs.schedule(AUDIT_TASK, marker="m2", priority=5)
    wait_until(lambda: count_audit(runtime, "m1") == 1 and count_audit(runtime, "m2") == 1)


def test_retry_later_runs_the_task_again_now_or_after_its_delay(
    runtime: Runtime, open_jobs: Open, start_worker: Start
) -> None:
    jobs = open_jobs()
    calls: list[float] = []

    @jobs.task("t.flaky", retries=3)
    def flaky(rt: Runtime, *, marker: str) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RetryLater(0, reason="straight back on the queue")
        if len(calls) == 2:
            raise RetryLater(0.3, reason="on the schedule")
        write_audit_once(rt, marker, RAN)

    start_worker(jobs)
    jobs.enqueue("t.flaky", marker="flaky")
    wait_until(lambda: count_audit(runtime, "flaky") == 1)
    assert len(calls) == 3
    assert calls[2] - calls[1] >= 0.3


def test_retries_are_bounded_and_unexpected_errors_are_not_retried(
    open_jobs: Open, start_worker: Start
) -> None:
    jobs = open_jobs()
    calls = {"busy": 0, "broken": 0}

    @jobs.task("t.busy", retries=2, backoff_base=0.0)
    def busy(rt: Runtime) -> None:
        calls["busy"] += 1
        raise RetryLater()

    @jobs.task("t.broken", retries=5)
    def broken(rt: Runtime) -> None:
        calls["broken"] += 1
        raise RuntimeError("a bug, not a transient failure")

    start_worker(jobs, threads=1)
    jobs.enqueue("t.busy")
    jobs.enqueue("t.broken")
    wait_until(lambda: calls["busy"] == 3 and calls["broken"] == 1)
    time.sleep(0.5)
    assert calls == {"busy": 3, "broken": 1}  # one run plus two retries; the bug ran once


def test_delay_postpones_a_task(runtime: Runtime, open_jobs: Open, start_worker: Start) -> None:
    jobs = open_jobs()
    start_worker(jobs)
    jobs.schedule(AUDIT_TASK, marker="later", delay=0.6)
    time.sleep(0.3)
    assert count_audit(runtime, "later") == 0
    wait_until(lambda: count_audit(runtime, "later") == 1, timeout=5)


def test_sweeper_runs_periodically_and_survives_a_failing_sweep(
    open_jobs: Open, start_worker: Start
) -> None:
    jobs = open_jobs()
    runs = {"good": 0, "bad": 0}

    @jobs.sweep("t.good")
    def good(rt: Runtime) -> int:
        runs["good"] += 1
        return 0

    @jobs.sweep("t.bad")
    def bad(rt: Runtime) -> int:
        runs["bad"] += 1
        raise RuntimeError("database unavailable")

    start_worker(jobs, sweep_interval=0.2)
    wait_until(lambda: runs["good"] >= 4 and runs["bad"] >= 4, timeout=10)
    # Still running after four failures in a row, and the good sweep with it (a count, not a
    # time: how soon depends on the machine's load, which the suite does not time).
    seen = dict(runs)
    wait_until(lambda: runs["good"] > seen["good"] and runs["bad"] > seen["bad"], timeout=10)


def test_sweeper_redrives_work_whose_message_was_lost(
    runtime: Runtime, open_jobs: Open, start_worker: Start
) -> None:
    write_audit_once(runtime, "lost", SWEEP_REQUEST)  # in the database, never on the queue
    start_worker(open_jobs(), sweep_interval=0.2)
    wait_until(lambda: count_audit(runtime, "lost", SWEPT) == 1)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_stop_is_prompt_idempotent_and_joins_the_threads(
    runtime: Runtime, open_jobs: Open, kind: str
) -> None:
    jobs = open_jobs(kind)
    worker = EmbeddedWorker(jobs, threads=3, sweep_interval=0.2, poll_interval=0.1)
    worker.stop()  # before start: nothing to do
    worker.start()
    worker.start()  # already running: nothing to do
    assert worker.running
    time.sleep(0.3)
    before = time.monotonic()
    worker.stop()
    assert time.monotonic() - before < 5
    worker.stop()
    assert not worker.running
    assert not [t for t in threading.enumerate() if t.name == "tether-jobs-supervisor"]
    worker.start()  # and it starts again
    jobs.enqueue(AUDIT_TASK, marker="again")
    wait_until(lambda: count_audit(runtime, "again") == 1)
    worker.stop()
