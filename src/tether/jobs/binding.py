"""``Jobs``: one runtime's handle on the queue — bind declared tasks, enqueue, sweep.

Every task runs through one wrapper, which resolves the runtime from the ``Jobs`` that bound
it (there is no module-global huey), turns :class:`RetryLater` into a delayed retry that
counts against the task's ``retries``, and does not retry unexpected errors: those are
logged, and the sweeper re-drives the work from the database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from huey import Huey
from huey.api import Task, TaskWrapper
from huey.exceptions import RetryTask
from huey.utils import normalize_time

from tether import tracing
from tether.errors import QueueUnavailable, RetryLater, UnknownTask
from tether.jobs.backends import DEFAULT_QUEUE_NAME, make_huey
from tether.jobs.registry import REGISTRY, F, SweepSpec, TaskRegistry, TaskSpec
from tether.jobs.retry import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP, DEFAULT_RETRIES
from tether.logging import get_logger
from tether.metrics import JOB_WAIT, JOBS

if TYPE_CHECKING:
    from tether.runtime import Runtime

log = get_logger("tether.jobs")

# huey keys its task registry by "<module>.<class name>"; a fixed module keeps the key equal to
# "tether.jobs.<task name>" in every process, whichever module declared the function.
HUEY_TASK_MODULE = "tether.jobs"
# ``task=`` is how huey passes the running Task; the others are ``schedule``'s options, and
# ``_meta`` carries when the job became due and its trace context (stripped before the task).
META = "_meta"
RESERVED_KWARGS = frozenset({"task", "delay", "eta", "priority", META})
# How many waiting messages ``queue_stats`` looks at for the oldest one.
PEEK = 100


class Jobs:
    """The job queue of one runtime.

    ``Jobs(runtime)`` opens the queue named by ``settings.resolved_queue_url``; pass ``huey``
    (from :func:`make_huey`) to use another. Two ``Jobs`` on the same URL and name are
    interchangeable handles on the same queue.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        huey: Huey | None = None,
        registry: TaskRegistry = REGISTRY,
    ) -> None:
        self.runtime = runtime
        self.huey = (
            huey
            if huey is not None
            else make_huey(runtime.settings.resolved_queue_url, name=DEFAULT_QUEUE_NAME)
        )
        self._shared = registry
        self._local = TaskRegistry()
        self._bound: dict[str, TaskWrapper] = {}
        self._lock = threading.Lock()
        self.bind()

    def task(
        self,
        name: str,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
    ) -> Callable[[F], F]:
        """Declare a task on this ``Jobs`` only (the module-level ``jobs.task`` declares it for
        every process); same signature as :meth:`TaskRegistry.task`."""
        declare = self._local.task(
            name, retries=retries, backoff_base=backoff_base, backoff_cap=backoff_cap
        )

        def decorator(fn: F) -> F:
            if self._shared.get_task(name) is not None:
                raise ValueError(f"task {name!r} is already declared for every process")
            declare(fn)
            self.bind()
            return fn

        return decorator

    def sweep(self, name: str) -> Callable[[F], F]:
        """Declare a sweep on this ``Jobs`` only."""
        return self._local.sweep(name)

    @property
    def task_names(self) -> list[str]:
        self.bind()
        return sorted(self._bound)

    @property
    def sweeps(self) -> list[SweepSpec]:
        return self._shared.sweeps() + self._local.sweeps()

    def bind(self) -> None:
        """Register every declared task not yet known to this huey instance (declarations
        made after this ``Jobs`` was built are picked up here, by ``enqueue`` and on start)."""
        with self._lock:
            for spec in self._shared.tasks() + self._local.tasks():
                if spec.name not in self._bound:
                    self._bound[spec.name] = self._wrap(spec)

    def enqueue(self, name: str, /, **kwargs: object) -> None:
        """Queue task ``name`` to run as soon as a worker is free.

        ``kwargs`` must be JSON values — ids and the grant epoch, never ORM objects — so the
        task reads the current state itself. Call this after the unit of work that made the
        job necessary has committed, or the worker may not see its rows yet.
        """
        self._put(name, kwargs, when=None, priority=None)

    def schedule(
        self,
        name: str,
        /,
        *,
        delay: float | timedelta | None = None,
        eta: datetime | None = None,
        priority: int | None = None,
        **kwargs: object,
    ) -> str:
        """Like :meth:`enqueue`, with options: run after ``delay`` seconds or at ``eta``, and
        before lower ``priority`` work. Returns the message id."""
        when = None
        if delay is not None or eta is not None:
            when = normalize_time(eta=eta, delay=delay, utc=self.huey.utc)
        return self._put(name, kwargs, when=when, priority=priority)

    def _put(
        self, name: str, kwargs: dict[str, object], *, when: datetime | None, priority: int | None
    ) -> str:
        wrapper = self._bound.get(name)
        if wrapper is None:
            self.bind()
            wrapper = self._bound.get(name)
        if wrapper is None:
            raise UnknownTask(f"no task named {name!r} is declared (is its module imported?)")
        _check_kwargs(name, kwargs)
        due = when.replace(tzinfo=UTC).timestamp() if when is not None else time.time()
        meta: dict[str, object] = {"due": due}
        trace_headers = tracing.carrier()
        if trace_headers:
            meta["trace"] = trace_headers
        message = wrapper.task_class((), {**kwargs, META: meta}, eta=when, priority=priority)
        if self.huey.immediate:
            self.huey.enqueue(message)  # runs the task here and now
        else:
            try:
                self.huey.enqueue(message)
            except Exception as exc:
                raise QueueUnavailable(f"could not queue task {name!r}: {exc}") from exc
        log.debug("job.enqueued", job=name, job_id=message.id)
        return str(message.id)

    def pending_count(self) -> int:
        """Messages waiting in the queue (not counting delayed ones)."""
        return int(self.huey.pending_count())

    def queue_stats(self) -> tuple[int, float | None]:
        """How many messages wait, and how long the longest-waiting of the next ``PEEK`` has
        waited since it became due, in seconds (None when none waits or none says)."""
        depth = self.pending_count()
        if not depth:
            return 0, None
        oldest: float | None = None
        for data in self.huey.storage.enqueued_items(PEEK):
            due = _due(self.huey, data)
            if due is not None:
                oldest = due if oldest is None else min(oldest, due)
        return depth, None if oldest is None else max(0.0, time.time() - oldest)

    def run_sweeps(self) -> dict[str, int]:
        """Run every sweep once; a sweep that raises is logged and left out of the result."""
        done: dict[str, int] = {}
        for spec in self.sweeps:
            try:
                done[spec.name] = int(spec.fn(self.runtime))
            except Exception:
                log.exception("job.sweep_failed", sweep=spec.name)
                continue
            if done[spec.name]:
                log.info("job.swept", sweep=spec.name, redriven=done[spec.name])
        return done

    def close(self) -> None:
        """Release the queue's connections (SQLite file handle, Redis pool)."""
        self.huey.storage.close()
        pool = getattr(self.huey.storage, "pool", None)
        if pool is not None:
            pool.disconnect()

    def _wrap(self, spec: TaskSpec) -> TaskWrapper:
        def run(*, task: Task, **kwargs: Any) -> None:
            self._run(spec, task, kwargs)

        run.__module__ = HUEY_TASK_MODULE
        run.__qualname__ = run.__name__ = spec.name
        wrapper: TaskWrapper = self.huey.task(
            name=spec.name, context=True, retries=spec.retry.retries
        )(run)
        return wrapper

    def _run(self, spec: TaskSpec, task: Task, kwargs: dict[str, Any]) -> None:
        meta = kwargs.pop(META, None) or {}
        if task.retries == spec.retry.retries and "due" in meta:  # first attempt only
            JOB_WAIT.labels(spec.name).observe(max(0.0, time.time() - float(meta["due"])))
        with tracing.span(
            f"job {spec.name}",
            kind=tracing.SpanKind.CONSUMER,
            parent=tracing.extract(meta.get("trace")),
            attributes={"tether.job": spec.name, "tether.job_id": str(task.id)},
        ):
            try:
                self._attempt(spec, task, kwargs)
            except RetryTask:
                JOBS.labels(spec.name, "retry").inc()
                raise
            except Exception:
                JOBS.labels(spec.name, "failed").inc()
                raise
            JOBS.labels(spec.name, "ok").inc()

    def _attempt(self, spec: TaskSpec, task: Task, kwargs: dict[str, Any]) -> None:
        try:
            spec.fn(self.runtime, **kwargs)
        except RetryLater as exc:
            if task.retries <= 0:
                log.warning(
                    "job.gave_up",
                    job=spec.name,
                    job_id=task.id,
                    attempts=spec.retry.retries + 1,
                    reason=exc.reason,
                )
                return
            # huey's RetryTask does not spend a retry; spend one here so retries are bounded.
            task.retries -= 1
            attempt = spec.retry.retries - task.retries
            wait = exc.delay if exc.delay is not None else spec.retry.delay(attempt)
            log.info(
                "job.retry", job=spec.name, job_id=task.id, attempt=attempt, delay=round(wait, 3)
            )
            # No delay: straight back on the queue; a delay: on huey's schedule.
            raise RetryTask(delay=wait if wait > 0 else None) from exc
        except Exception:
            task.retries = 0  # not retried: the sweeper re-drives it from the database
            raise


def _due(huey: Huey, data: bytes) -> float | None:
    """When a queued message became due (None for one from before ``_meta`` existed)."""
    try:
        message = huey.serializer.deserialize(data)
        return float(message.kwargs[META]["due"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _check_kwargs(name: str, kwargs: dict[str, object]) -> None:
    clash = RESERVED_KWARGS.intersection(kwargs)
    if clash:
        raise TypeError(f"task {name!r}: argument names {sorted(clash)} are reserved")
    try:
        json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"task {name!r}: arguments must be JSON values (ids, the grant epoch): {exc}"
        ) from exc
