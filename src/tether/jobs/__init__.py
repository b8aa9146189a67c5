"""Background jobs on huey: thin, idempotent tasks that call the service layer.

Declare work with :func:`task` and :func:`sweep`, queue it with :meth:`Jobs.enqueue`, run it
with :class:`EmbeddedWorker` (inside ``tether serve``) or ``tether worker``. See docs/jobs.md.
"""

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
