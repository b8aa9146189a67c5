"""Fixtures for the jobs tests: queues on SQLite, Redis and PostgreSQL, and embedded workers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, REDIS_URL, need_service
from tether.jobs import EmbeddedWorker, Jobs, make_huey
from tether.runtime import Runtime

QUEUES = ["sqlite", "redis", "postgresql"]


def unique_name() -> str:
    """A queue name of its own, so tests sharing a Redis server never see each other's keys."""
    return f"test_{uuid.uuid4().hex[:12]}"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(step)
    return time.monotonic() - start


def queue_url(runtime: Runtime, kind: str) -> str:
    if kind == "sqlite":
        return runtime.settings.resolved_queue_url
    if kind == "redis":
        return need_service(REDIS_URL, "Redis")
    return need_service(POSTGRES_URL, "PostgreSQL")


@pytest.fixture
def open_jobs(runtime: Runtime) -> Iterator[Callable[..., Jobs]]:
    """``open_jobs(kind="sqlite", name=None)``: a Jobs on a queue of its own, flushed after."""
    opened: list[Jobs] = []

    def open_(kind: str = "sqlite", name: str | None = None) -> Jobs:
        jobs = Jobs(runtime, huey=make_huey(queue_url(runtime, kind), name=name or unique_name()))
        opened.append(jobs)
        return jobs

    yield open_
    for jobs in opened:
        jobs.huey.storage.flush_all()
        jobs.close()


@pytest.fixture
def start_worker(open_jobs: Callable[..., Jobs]) -> Iterator[Callable[..., EmbeddedWorker]]:
    """``start_worker(jobs, **options)``: a started EmbeddedWorker (fast polling, no sweeps
    unless asked), stopped after the test."""
    started: list[EmbeddedWorker] = []

    def start(jobs: Jobs, **options: Any) -> EmbeddedWorker:
        options.setdefault("poll_interval", 0.1)
        options.setdefault("sweep_interval", None)
        options.setdefault("stop_timeout", 5.0)
        worker = EmbeddedWorker(jobs, **options)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
