"""Fixtures for the SDK and the connections CLI: a stand-in job worker and SDK clients.

No background worker is attached to ``runtime`` in tests, so ``sync_now``, the first sync after
the callback and ``delete_connection`` would only be scheduled. ``worker`` attaches a job queue
that runs the real ``run_sync`` / ``run_delete`` on a thread at once, as the embedded worker
would; everything else goes over real HTTP to the live server and its sandbox.

Import the fixtures into a test module (``tests/cli`` uses them too).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MemberCtx
from tether.client import ConnectionManager, MemberConnection
from tether.connections.deletion import run_delete
from tether.data.exports import run_export
from tether.runtime import Runtime
from tether.sync.run import run_sync
from tether.testing.flow import authorize_in_browser
from tether.testing.live_server import LiveServer

CLINIC, LAB, RETIRED = "sandbox-clinic", "sandbox-lab", "sandbox-retired-clinic"
FAST = {"interval": 0.05, "timeout": 30.0}  # wait_until options that keep tests quick


class ThreadJobs:
    """A ``JobQueue`` that runs ``sync``, ``delete`` and ``exports.run`` on a thread as soon as
    they are queued."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.threads: list[threading.Thread] = []
        self.enqueued: list[tuple[str, dict[str, object]]] = []

    def enqueue(self, task: str, /, **kwargs: Any) -> None:
        self.enqueued.append((task, kwargs))
        tasks: dict[str, Callable[[], object]]
        if task == "exports.run":
            tasks = {task: lambda: run_export(self.runtime, str(kwargs["export_id"]))}
        else:
            pk, epoch = kwargs["connection_pk"], kwargs["epoch"]
            tasks = {
                "sync": lambda: run_sync(self.runtime, connection_pk=pk, epoch=epoch),
                "delete": lambda: run_delete(self.runtime, connection_pk=pk, epoch=epoch),
            }
        thread = threading.Thread(target=tasks[task], name=f"test-job-{task}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self, timeout: float = 30.0) -> None:
        for thread in self.threads:
            thread.join(timeout)


@pytest.fixture
def worker(runtime: Runtime, server: LiveServer) -> Iterator[ThreadJobs]:
    """Jobs run at once on threads (joined before the live server stops)."""
    jobs = ThreadJobs(runtime)
    runtime.jobs = jobs
    yield jobs
    runtime.jobs = None
    jobs.join()


@pytest.fixture
def sdk(server: LiveServer, member: MemberCtx) -> Iterator[ConnectionManager]:
    """The member's ConnectionManager against the live server (fast retries)."""
    with ConnectionManager(server.url, member.token, backoff=0.01) as tether:
        yield tether


def consent(redirect_url: str, patient: str | None = None, approve: bool = True) -> str | None:
    """What the member does in a browser: follow the link, approve at the source, come back."""
    with httpx.Client(timeout=30) as browser:
        return authorize_in_browser(
            browser, redirect_url, patient=patient, approve=approve
        ).status_code


def retrieved(conn: MemberConnection) -> bool:
    return conn.sync_status in ("RETRIEVED", "ERROR")
