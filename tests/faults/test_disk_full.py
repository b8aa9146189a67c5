"""The SQLite file's disk fills up during a sync. The sync runs in a child process whose file
size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) is just above what the database holds, so
SQLite's writes fail as on a full disk (EFBIG: "disk I/O error"). Afterwards the file is
intact, the connection is in a documented state, and a re-driven sync completes."""

from __future__ import annotations

import re
import resource
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import MemberCtx, process_env
from tests.faults.test_database_restart import _counts, _no_duplicates
from tests.sync.helpers import connected, reload, stored
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.sync.claim import HEARTBEAT_STALE_SECONDS
from tether.sync.run import run_sync
from tether.sync.scheduling import RETRY_SOON_SECONDS
from tether.tasks.sync import due_syncs

CLINIC = "sandbox-clinic"
HEADROOM = 256 * 1024  # bytes any database file may grow by before the "disk" is full

SYNC_IN_A_FULL_DISK = """
import signal, sys
from tether.bootstrap import build_runtime
from tether.settings import Settings
from tether.sync.run import run_sync
from tether.sync.scheduling import RETRY_SOON_SECONDS
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
runtime = build_runtime(Settings(), migrate=False)
try:
    report = run_sync(runtime, connection_pk=int(sys.argv[1]), epoch=int(sys.argv[2]))
    print("report", report and report.status.value, flush=True)
except Exception as exc:
    print("failed", type(exc).__name__, exc, flush=True)
"""


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """Overrides the fault suite's private PostgreSQL: this one is about SQLite's file."""
    target = tmp_path / "tether.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


def test_a_sync_on_a_full_disk_fails_cleanly_and_is_re_driven(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-large")
    database = Path(runtime.settings.resolved_database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(database) as raw:  # fold the WAL into the file: sizes are known
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    limit = database.stat().st_size + HEADROOM

    def full_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    child = subprocess.run(
        [sys.executable, "-c", SYNC_IN_A_FULL_DISK, str(conn.id), str(conn.grant_epoch)],
        env=process_env(runtime.settings),
        preexec_fn=full_disk,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    # EFBIG is SQLite's "disk I/O error"; ENOSPC its "database or disk is full". The page
    # writes' statements go to the driver itself ("OperationalError: disk I/O error"), the
    # rest through SQLAlchemy ("(sqlite3.OperationalError) disk I/O error").
    assert re.search(r"OperationalError(: |\) )disk I/O error", child.stdout)
    assert "sync finished" in child.stdout  # the run ended and recorded what it could

    # The file is intact and holds only whole transactions: every row it kept is one the
    # source has, and the connection is CONNECTED with its sync cut (still RETRIEVING, or
    # ERROR when there was room to record the end).
    with sqlite3.connect(database) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    expected = _counts(sandbox, "clinic-large")
    kept = stored(runtime, conn.id)
    assert sum(kept.values()) < sum(expected.values())
    assert all(kept[t] <= expected[t] for t in kept)
    cut = reload(runtime, conn.id)
    assert cut.status == "CONNECTED"
    if cut.sync_status == "RETRIEVING":
        # No room to record the end: the heartbeat goes stale and the sweep re-drives it.
        later = timedelta(seconds=HEARTBEAT_STALE_SECONDS + 5)
    else:
        # The end was recorded: the failure is named, and the next run is due soon (a
        # failure of tether's own is not the source's: no whole interval to wait).
        assert "PATIENT_RETRIEVAL_ERROR" in [e["coding"][0]["code"] for e in cut.sync_errors]
        assert cut.next_sync_at is not None
        assert cut.next_sync_at - runtime.clock() <= timedelta(seconds=RETRY_SOON_SECONDS)
        later = timedelta(seconds=RETRY_SOON_SECONDS + 5)
    real_clock = runtime.clock
    runtime.clock = lambda: real_clock() + later
    assert due_syncs(runtime) == 1
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED", report and report.errors
    assert stored(runtime, conn.id) == expected
    _no_duplicates(runtime, conn.id)
