"""Background jobs on huey: thin, idempotent tasks that call the service layer.

Declare work with :func:`task` and :func:`sweep`, queue it with :meth:`Jobs.enqueue`, run it
with :class:`EmbeddedWorker` (inside ``tether serve``) or ``tether worker``. See docs/jobs.md.

The names below are imported on first use (PEP 562), not with the package: ``tether worker
--help`` reads its option defaults from :mod:`tether.jobs.worker` and :mod:`tether.jobs.backends`,
and importing those runs this file first; the binding would bring the store, the metrics and
the sync's HTTP client with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.errors import QueueUnavailable, RetryLater, UnknownTask
    from tether.jobs.backends import DEFAULT_QUEUE_NAME, make_huey
    from tether.jobs.binding import Jobs
    from tether.jobs.registry import (
        REGISTRY,
        SweepFn,
        SweepSpec,
        TaskFn,
        TaskRegistry,
        TaskSpec,
        load_task_modules,
        sweep,
        task,
    )
    from tether.jobs.retry import RetryPolicy
    from tether.jobs.worker import EmbeddedWorker

_WHERE = {
    "QueueUnavailable": "tether.errors",
    "RetryLater": "tether.errors",
    "UnknownTask": "tether.errors",
    "DEFAULT_QUEUE_NAME": "tether.jobs.backends",
    "make_huey": "tether.jobs.backends",
    "Jobs": "tether.jobs.binding",
    "REGISTRY": "tether.jobs.registry",
    "SweepFn": "tether.jobs.registry",
    "SweepSpec": "tether.jobs.registry",
    "TaskFn": "tether.jobs.registry",
    "TaskRegistry": "tether.jobs.registry",
    "TaskSpec": "tether.jobs.registry",
    "load_task_modules": "tether.jobs.registry",
    "sweep": "tether.jobs.registry",
    "task": "tether.jobs.registry",
    "RetryPolicy": "tether.jobs.retry",
    "EmbeddedWorker": "tether.jobs.worker",
}

__all__ = [
    "DEFAULT_QUEUE_NAME",
    "REGISTRY",
    "EmbeddedWorker",
    "Jobs",
    "QueueUnavailable",
    "RetryLater",
    "RetryPolicy",
    "SweepFn",
    "SweepSpec",
    "TaskFn",
    "TaskRegistry",
    "TaskSpec",
    "UnknownTask",
    "load_task_modules",
    "make_huey",
    "sweep",
    "task",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
