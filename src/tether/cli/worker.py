"""``tether worker``: consume the job queue in the foreground (the scale-out process).

Run any number of them, on any hosts, against ``TETHER_QUEUE_URL=redis://…`` (or a PostgreSQL
queue) with ``tether serve --no-worker`` in front. SIGINT or SIGTERM stops gracefully: no new
task starts and a running one gets ``--stop-timeout`` seconds; a second signal exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from types import FrameType
from typing import Annotated

import typer

from tether.cli.app import parts, runtime_from
from tether.jobs.backends import DEFAULT_QUEUE_NAME
from tether.jobs.worker import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_SWEEP_INTERVAL,
    DEFAULT_THREADS,
)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SIGNAL_POLL = 0.1  # seconds


def defer_to_the_api(nice: int) -> None:
    """Run this process at niceness ``nice`` (only ever raised: an operator's higher value
    stands, and lowering it would need privileges). A worker's syncs are background work;
    on a host it shares with ``tether serve`` (and the database), the API's requests then get
    a core first. Linux keeps a niceness per thread and a thread inherits its creator's, so
    every thread this process has is set, and every later one inherits it."""
    for tid in _threads():
        with contextlib.suppress(OSError):  # a thread that has just ended
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process's priority
        return [0]


def register(app: typer.Typer) -> None:
    """Attach ``tether worker`` to ``app``."""
    app.command("worker")(worker)


def worker(
    ctx: typer.Context,
    threads: Annotated[
        int, typer.Option("--threads", "-t", min=1, help="worker threads")
    ] = DEFAULT_THREADS,
    import_modules: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            help="extra module declaring tasks and sweeps (a plugin; repeatable)",
        ),
    ] = None,
    queue_url: Annotated[str | None, typer.Option(help="queue URL [env: TETHER_QUEUE_URL]")] = None,
    queue_name: Annotated[
        str, typer.Option(help="namespace inside the queue store (`serve` uses the default)")
    ] = DEFAULT_QUEUE_NAME,
    sweep_interval: Annotated[
        float, typer.Option(min=0, help="seconds between sweeps; 0 turns sweeping off")
    ] = DEFAULT_SWEEP_INTERVAL,
    stop_timeout: Annotated[
        float, typer.Option(min=0, help="seconds a running task gets to finish on stop")
    ] = DEFAULT_STOP_TIMEOUT,
    poll_interval: Annotated[
        float, typer.Option(min=0.01, help="longest wait between polls of a SQLite queue")
    ] = DEFAULT_POLL_INTERVAL,
) -> None:
    """Consume the job queue and run the sweeps until SIGINT or SIGTERM."""
    from tether.heap import WORKER_YOUNG_THRESHOLD, freeze_start_up, tune_gc
    from tether.jobs import EmbeddedWorker, Jobs, load_task_modules
    from tether.logging import configure_logging

    load_task_modules(import_modules or [])
    runtime = runtime_from(ctx, queue_url=queue_url)
    defer_to_the_api(runtime.settings.worker_nice)
    settings = runtime.settings
    configure_logging(level=settings.log_level, json_output=settings.log_json)
    jobs = parts(ctx).build_jobs(runtime, queue_name=queue_name)
    if isinstance(runtime.jobs, Jobs):
        runtime.jobs.close()
    runtime.jobs = jobs  # what sweeps enqueue goes to this queue (and name)
    parts(ctx).serve_metrics(runtime)  # on TETHER_METRICS_PORT, when set
    consumer = EmbeddedWorker(
        jobs,
        threads=threads,
        sweep_interval=sweep_interval,
        stop_timeout=stop_timeout,
        poll_interval=poll_interval,
    )
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only record it: taking a lock here could deadlock with the interrupted main thread.
        received.append(signum)
        for sig in STOP_SIGNALS:  # a second signal ends the process at once
            signal.signal(sig, signal.SIG_DFL)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    engine = parts(ctx).build_sync_engine(runtime)  # the sync task hands runs to it
    freeze_start_up()  # everything built so far lives as long as the process
    tune_gc(WORKER_YOUNG_THRESHOLD)  # no API request here waits for a collection
    engine.start()
    consumer.start()
    try:
        while not received:
            time.sleep(SIGNAL_POLL)
    finally:
        consumer.stop()
        engine.stop()
        jobs.close()
        runtime.db.dispose()
