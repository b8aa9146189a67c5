"""Where tasks and sweeps are declared, by name, as plain functions of the runtime.

A module declares its work once, at import time::

    from tether import jobs

    @jobs.task("sync.connection", retries=8)
    def sync_connection(runtime: Runtime, *, connection_id: str, epoch: int) -> None: ...

    @jobs.sweep("sync.due")
    def enqueue_due_syncs(runtime: Runtime) -> int: ...   # how many it re-drove

Declarations hold no huey state: every :class:`~tether.jobs.Jobs` binds them to its own huey
instance, so one process can hold many runtimes (as the tests do). tether's own tasks are an
explicit list (``tether.tasks``) that the composition root (``tether.bootstrap``) adds to
:data:`REGISTRY`; a plugin declares its own with the decorators and is imported with
``tether worker --import MODULE``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tether.errors import ConfigurationError
from tether.jobs.retry import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_RETRIES,
    RetryPolicy,
)

if TYPE_CHECKING:
    from tether.runtime import Runtime

TaskFn = Callable[..., object]
"""``fn(runtime, **kwargs)``: kwargs are JSON values (ids, the grant epoch), never ORM objects."""
SweepFn = Callable[["Runtime"], int]
"""``fn(runtime) -> int``: finds left-behind work in the database and re-drives it."""
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TaskSpec:
    name: str
    fn: TaskFn
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    fn: SweepFn


class TaskRegistry:
    """Named task and sweep declarations. Declaring the same function twice is harmless
    (a module imported again); a different function under a taken name is an error."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskSpec] = {}
        self._sweeps: dict[str, SweepSpec] = {}

    def task(
        self,
        name: str,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
    ) -> Callable[[F], F]:
        """Declare ``fn(runtime, **kwargs)`` as the task ``name``."""
        policy = RetryPolicy(retries=retries, base=backoff_base, cap=backoff_cap)

        def decorator(fn: F) -> F:
            self.add(TaskSpec(name=name, fn=fn, retry=policy))
            return fn

        return decorator

    def add(self, spec: TaskSpec | SweepSpec) -> None:
        """Declare a task or a sweep from its spec (what the decorators do)."""
        _check_name(spec.name)
        table: dict[str, Any] = self._tasks if isinstance(spec, TaskSpec) else self._sweeps
        kind = "task" if isinstance(spec, TaskSpec) else "sweep"
        known = table.get(spec.name)
        if known is not None and known.fn is not spec.fn:
            raise ValueError(f"{kind} {spec.name!r} is already declared by {_where(known.fn)}")
        table[spec.name] = spec

    def sweep(self, name: str) -> Callable[[F], F]:
        """Declare ``fn(runtime) -> int`` as the sweep ``name``, run by every consumer process."""

        def decorator(fn: F) -> F:
            self.add(SweepSpec(name=name, fn=fn))
            return fn

        return decorator

    def tasks(self) -> list[TaskSpec]:
        return list(self._tasks.values())

    def sweeps(self) -> list[SweepSpec]:
        return list(self._sweeps.values())

    def get_task(self, name: str) -> TaskSpec | None:
        return self._tasks.get(name)


def _check_name(name: str) -> None:
    if not name or not name.replace(".", "").replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"job names are dotted words (letters, digits, _ and -), not {name!r}")


def _where(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


REGISTRY = TaskRegistry()
"""The process-wide declarations, bound by every Jobs."""

task = REGISTRY.task
sweep = REGISTRY.sweep


def load_task_modules(names: Iterable[str]) -> None:
    """Import the modules that declare tasks and sweeps (the plugin hook of ``tether worker``)."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import task module {name!r}: {exc}") from exc
