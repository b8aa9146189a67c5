"""Declaring tasks and sweeps, and what enqueue accepts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.jobs.tasks_for_tests import AUDIT_TASK, RAN, count_audit
from tether.errors import ConfigurationError
from tether.jobs import (
    Jobs,
    QueueUnavailable,
    RetryPolicy,
    TaskRegistry,
    UnknownTask,
    load_task_modules,
    make_huey,
)
from tether.runtime import JobQueue, Runtime


def _noop(runtime: Runtime) -> None:
    return None


def test_same_function_may_be_declared_twice_but_a_name_is_not_reused() -> None:
    registry = TaskRegistry()
    registry.task("a.b")(_noop)
    registry.task("a.b")(_noop)  # the module imported again
    with pytest.raises(ValueError, match="already declared"):
        registry.task("a.b")(lambda runtime: None)
    registry.sweep("s")(_noop)
    with pytest.raises(ValueError, match="already declared"):
        registry.sweep("s")(lambda runtime: 0)
    with pytest.raises(ValueError, match="dotted words"):
        registry.task("no spaces")(_noop)


def test_local_task_cannot_shadow_a_task_declared_for_every_process(
    open_jobs: Callable[..., Jobs],
) -> None:
    jobs = open_jobs()
    assert AUDIT_TASK in jobs.task_names
    with pytest.raises(ValueError, match="every process"):
        jobs.task(AUDIT_TASK)(_noop)


def test_enqueue_refuses_unknown_names_and_non_json_arguments(
    open_jobs: Callable[..., Jobs],
) -> None:
    jobs = open_jobs()
    with pytest.raises(UnknownTask, match="nope"):
        jobs.enqueue("nope")
    with pytest.raises(TypeError, match="JSON"):
        jobs.enqueue(AUDIT_TASK, marker=object())
    with pytest.raises(TypeError, match="JSON"):
        jobs.enqueue(AUDIT_TASK, marker=datetime.now(UTC))
    for reserved in ("task", "delay", "eta", "priority"):
        with pytest.raises(TypeError, match="reserved"):
            jobs.enqueue(AUDIT_TASK, marker="m", **{reserved: 1})
    assert jobs.pending_count() == 0
    assert jobs.enqueue(AUDIT_TASK, marker="m") is None
    job_id = jobs.schedule(AUDIT_TASK, marker="m", priority=1)
    assert isinstance(job_id, str) and jobs.pending_count() == 2


def test_jobs_is_the_runtime_job_queue_and_reports_an_unreachable_store(
    runtime: Runtime,
) -> None:
    jobs: JobQueue = Jobs(runtime, huey=make_huey("redis://127.0.0.1:1/0"))
    with pytest.raises(QueueUnavailable, match="could not queue"):
        jobs.enqueue(AUDIT_TASK, marker="m")


def test_immediate_mode_runs_the_task_inside_enqueue(runtime: Runtime) -> None:
    jobs = Jobs(runtime, huey=make_huey(runtime.settings.resolved_queue_url, immediate=True))
    jobs.enqueue(AUDIT_TASK, marker="now")
    assert count_audit(runtime, "now", RAN) == 1


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(retries=10, base=1.0, cap=5.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(retries=-1)


def test_unimportable_task_module_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no_such_module"):
        load_task_modules(["tests.jobs.no_such_module"])
