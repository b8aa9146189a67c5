"""What long-running processes set up before they serve: ``tether serve`` and ``tether worker``
freeze the heap they built at start-up (:mod:`tether.heap`), and a worker runs at a lower CPU
priority than the API it shares a host with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import process_env
from tether.heap import WORKER_YOUNG_THRESHOLD
from tether.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

SERVE = """
import gc, uvicorn
from tether.bootstrap import build_runtime, serve
from tether.settings import Settings
seen = []
uvicorn.run = lambda app, **options: seen.append(gc.get_freeze_count())
serve(build_runtime(Settings(), migrate=False), host="127.0.0.1", port=1)
print("frozen", seen[0])
"""

WORKER = """
import gc, os, signal, sys
from tether.sync.engine import SyncEngine
start = SyncEngine.start
def started(self):
    print("frozen", gc.get_freeze_count(), flush=True)
    nices = [int(open(f"/proc/self/task/{t}/stat").read().rsplit(")", 1)[1].split()[16])
             for t in os.listdir("/proc/self/task")]
    print("nice", min(nices), max(nices), len(nices), flush=True)
    start(self)
    print("young", gc.get_threshold()[0], flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # then stop as an operator would
SyncEngine.start = started
sys.argv = ["tether", "worker", "--sweep-interval", "0"]
from tether.command import main
main()
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("program", [SERVE, WORKER], ids=["serve", "worker"])
def test_a_server_and_a_worker_freeze_their_start_up_heap(program: str, settings: Settings) -> None:
    out = subprocess.run(
        [sys.executable, "-c", program],
        env=process_env(settings, TETHER_LOG_LEVEL="WARNING"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    frozen = int(out.stdout.split("frozen", 1)[1].split()[0])
    assert frozen > 50_000  # the modules, the app and the runtime, out of the collector's way
    if program is WORKER:  # a dedicated worker collects its young generation less often
        assert int(out.stdout.split("young", 1)[1].split()[0]) == WORKER_YOUNG_THRESHOLD


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("setting", "expected"), [("7", 7), ("0", 0), (None, 10)])
def test_a_worker_runs_every_thread_at_its_niceness(
    setting: str | None, expected: int, settings: Settings
) -> None:
    """``TETHER_WORKER_NICE`` (10 unless set) for every thread the worker has, those started
    while it was built included (a niceness is per thread on Linux)."""
    extra = {"TETHER_WORKER_NICE": setting} if setting is not None else {}
    out = subprocess.run(
        [sys.executable, "-c", WORKER],
        env=process_env(settings, TETHER_LOG_LEVEL="WARNING", **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    low, high, threads = (int(v) for v in out.stdout.split("nice", 1)[1].split()[:3])
    expected = max(expected, os.getpriority(os.PRIO_PROCESS, 0))  # never lowered
    assert (low, high) == (expected, expected)
    assert threads >= 2  # the main thread and those the runtime started (SQLite's checkpoints)


HELP = """
import sys
sys.argv = ["tether", *sys.argv[1:]]
from tether.command import main
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
heavy = (
    "tether.bootstrap", "tether.api", "tether.graphql", "fastapi", "strawberry",
    "tether.jobs.binding", "tether.store.models", "tether.sync",
)
print("imported", sorted(m for m in heavy if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--help"], "Connection manager for consumer health data"),
        (["worker", "--help"], "--sweep-interval"),
    ],
)
def test_the_command_line_helps_without_importing_the_application(
    argv: list[str], says: str
) -> None:
    """``tether --help`` (and a page process spawned under the ``tether`` script, which runs
    the script's imports again) does not import the composition root: the API, GraphQL and
    the store load when a command first needs them (:mod:`tether.command`). ``tether worker
    --help`` reads its defaults from :mod:`tether.jobs` without the job binding, the store
    or the sync engine (the package's names load on first use)."""
    out = subprocess.run(
        [sys.executable, "-c", HELP, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert says in out.stdout
    assert out.stdout.rstrip().splitlines()[-1] == "imported []"


def test_every_name_the_jobs_package_exports_loads() -> None:
    """``tether.jobs`` names each export three times (for type checkers, in ``__all__`` and
    where it lives, for the first use): a name missing from one of them fails here, not in
    a worker."""
    import tether.jobs as jobs

    assert sorted(jobs.__all__) == sorted(jobs._WHERE)
    for name in jobs.__all__:
        assert getattr(jobs, name) is not None, name
    with pytest.raises(AttributeError):
        jobs.NotAJobsName  # noqa: B018
