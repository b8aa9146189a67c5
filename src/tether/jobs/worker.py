"""``EmbeddedWorker``: huey's consumer threads plus the sweeper, inside the current process.

It runs in ``tether serve``/``tether demo`` beside the HTTP app (a ``Runtime`` service) and in
the foreground of ``tether worker``. huey's ``Consumer.start()``/``run()`` install signal
handlers, which only the main thread may do, so this starts the consumer's worker and scheduler
threads itself and leaves signals to the process (``tether worker`` handles SIGINT/SIGTERM).

One supervisor thread runs the sweeps every ``sweep_interval`` seconds (and once at start, to
pick up what a crash left behind) and restarts a worker thread that died. Every consumer
process sweeps: with several workers the sweeps overlap, which is why sweeps and tasks must be
idempotent rather than locked.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from huey.consumer import Consumer

from tether.logging import get_logger

if TYPE_CHECKING:
    from tether.jobs.binding import Jobs

log = get_logger("tether.jobs")

DEFAULT_THREADS = 2
DEFAULT_SWEEP_INTERVAL = 60.0  # seconds
DEFAULT_STOP_TIMEOUT = 10.0  # seconds a running task gets to finish on stop
DEFAULT_POLL_INTERVAL = 1.0  # longest wait between polls of a non-blocking queue (SQLite)
HEALTH_CHECK_INTERVAL = 10.0


class EmbeddedWorker:
    """Consume ``jobs``' queue with ``threads`` threads and run its sweeps; ``start()`` and
    ``stop()`` are idempotent, and ``stop()`` returns once the threads are joined (or after
    ``stop_timeout``, leaving a stuck task's daemon thread behind)."""

    def __init__(
        self,
        jobs: Jobs,
        *,
        threads: int = DEFAULT_THREADS,
        sweep_interval: float | None = DEFAULT_SWEEP_INTERVAL,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        if threads < 1:
            raise ValueError("an embedded worker needs at least one thread")
        self.jobs = jobs
        self.threads = threads
        self.sweep_interval = sweep_interval  # None or 0: no sweeping in this process
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        return self._consumer is not None

    def start(self) -> None:
        with self._lock:
            if self._consumer is not None:
                return
            if self.jobs.huey.immediate:
                log.info("job.worker_skipped", reason="immediate mode runs tasks on enqueue")
                return
            self.jobs.bind()
            consumer = self.jobs.huey.create_consumer(
                workers=self.threads,
                worker_type="thread",
                periodic=False,  # huey's periodic tasks tick per minute; sweeps run here
                initial_delay=min(0.1, self.poll_interval),
                max_delay=self.poll_interval,
                shutdown_timeout=self.stop_timeout,
            )
            consumer.scheduler.start()
            for _, thread in consumer.worker_threads:
                thread.start()
            self._stopping = threading.Event()
            self._supervisor = threading.Thread(
                target=self._supervise,
                args=(consumer, self._stopping),
                name="tether-jobs-supervisor",
                daemon=True,
            )
            self._supervisor.start()
            self._consumer = consumer
        log.info(
            "job.worker_started",
            threads=self.threads,
            queue=type(self.jobs.huey).__name__,
            tasks=self.jobs.task_names,
            sweeps=[s.name for s in self.jobs.sweeps],
        )

    def stop(self) -> None:
        with self._lock:
            consumer, self._consumer = self._consumer, None
            supervisor, self._supervisor = self._supervisor, None
            if consumer is None:
                return
            deadline = time.monotonic() + self.stop_timeout
            self._stopping.set()
            consumer.stop(graceful=True)  # sets the stop flag, joins workers and scheduler
            if supervisor is not None:
                supervisor.join(max(deadline - time.monotonic(), 0.1))
            self.jobs.huey.notify_interrupted_tasks()
        log.info("job.worker_stopped")

    def _supervise(self, consumer: Consumer, stopping: threading.Event) -> None:
        interval = self.sweep_interval or 0.0
        next_sweep = time.monotonic() if interval > 0 else float("inf")
        next_check = time.monotonic() + HEALTH_CHECK_INTERVAL
        while not stopping.is_set():
            now = time.monotonic()
            if now >= next_sweep:
                self.jobs.run_sweeps()
                next_sweep = time.monotonic() + interval
            if now >= next_check:
                consumer.check_worker_health()
                next_check = time.monotonic() + HEALTH_CHECK_INTERVAL
            stopping.wait(max(min(next_sweep, next_check) - time.monotonic(), 0.0))
