"""The collector's settings for long-running processes: ``tether serve`` and ``tether worker``
freeze what they built at start-up before they serve (see :mod:`tether.heap`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import process_env
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
    start(self)
    os.kill(os.getpid(), signal.SIGTERM)  # then stop as an operator would
SyncEngine.start = started
sys.argv = ["tether", "worker", "--sweep-interval", "0"]
from tether.bootstrap import main
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
