"""The store process (SQLite's page writes in a process of their own): a sync written from it
stores what a sync written from database threads stores; it is fenced like them; one that dies
fails the writes it had taken and the next write starts another; it stays small."""

from __future__ import annotations

import os
import shutil
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import MemberCtx, make_member
from tests.sync.helpers import codes, connected, observations, reload, stored, wait_for
from tether.errors import Fenced
from tether.runtime import Runtime
from tether.store.models import FhirResource, FhirSearchValue
from tether.sync import store_process
from tether.sync.context import uses_store_process
from tether.sync.run import run_sync
from tether.sync.store_process import StoreFailed, StoreProcess

CLINIC = "sandbox-clinic"


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the store process writes to a SQLite file."""
    target = tmp_path / "tether.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


def _data(runtime: Runtime, pk: int) -> dict[tuple[str, str], str]:
    with runtime.db.read() as session:
        rows = session.execute(
            select(FhirResource.resource_type, FhirResource.resource_id, FhirResource.data).where(
                FhirResource.connection_id == pk
            )
        )
        return {(t, i): d.rsplit('"lastUpdated":', 1)[0] for t, i, d in rows}  # stamps differ


def test_a_sync_written_from_the_store_process_stores_what_threads_store(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    """The same patient synced twice, once per way of writing: the same rows, the same text
    (but the stamp), the same search values, the same counts and outcome."""
    assert uses_store_process(runtime)  # a worker's default on a SQLite file
    other = make_member(runtime, member.tenant, "store-twin")
    by_threads = connected(client, member, runtime, CLINIC, "clinic-1")
    by_process = connected(client, other, runtime, CLINIC, "clinic-1")
    threads = run_sync(runtime, connection_pk=by_threads.id, epoch=by_threads.grant_epoch)
    process = run_sync(
        runtime, connection_pk=by_process.id, epoch=by_process.grant_epoch, store=True
    )
    assert threads is not None and process is not None
    assert process.status == threads.status == "RETRIEVED", process.errors
    assert process.written == threads.written > 300
    assert stored(runtime, by_process.id) == stored(runtime, by_threads.id)
    assert reload(runtime, by_process.id).resource_counts == stored(runtime, by_process.id)
    assert _data(runtime, by_process.id) == _data(runtime, by_threads.id)
    with runtime.db.read() as session:
        values = {
            member_id: session.scalars(
                select(FhirSearchValue.name).where(FhirSearchValue.member_id == member_id)
            ).all()
            for member_id in (member.member_id, other.member_id)
        }
    assert Counter(values[member.member_id]) == Counter(values[other.member_id])
    assert len(values[other.member_id]) > 100
    # Nothing new at the source: a second sync through the store process writes nothing.
    again = run_sync(runtime, connection_pk=by_process.id, epoch=by_process.grant_epoch, store=True)
    assert again is not None and again.status == "RETRIEVED" and again.written == 0


def test_the_store_process_is_fenced_and_restarted_after_it_dies(
    client, member: MemberCtx, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    store = StoreProcess(runtime.db.url)
    try:

        def write(prefix: str, count: int, epoch: int) -> Counter[str]:
            return store.submit(
                connection_pk=conn.id,
                epoch=epoch,
                member_id=member.member_id,
                rows=observations(prefix, count),
            ).result(timeout=60)

        assert write("a", 3, conn.grant_epoch) == Counter({"Observation": 3})
        with pytest.raises(Fenced):  # another grant: nothing written
            write("b", 3, conn.grant_epoch + 1)
        assert stored(runtime, conn.id) == {"Observation": 3}
        first = store.pid()
        assert first is not None
        # Small: the driver and orjson, no SQLAlchemy (which alone would be 28 MB more).
        rss_kb = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{first}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
        )
        assert rss_kb < 40 * 1024, rss_kb

        os.kill(first, signal.SIGSTOP)  # it takes the next write and never answers...
        lost = store.submit(
            connection_pk=conn.id,
            epoch=conn.grant_epoch,
            member_id=member.member_id,
            rows=observations("lost", 2),
        )
        wait_for(lambda: store.waiting() == 1)
        os.kill(first, signal.SIGKILL)  # ...and dies with it
        with pytest.raises(StoreFailed):
            lost.result(timeout=60)
        wait_for(lambda: store.pid() is None)
        with pytest.raises(StoreFailed, match="keeps stopping"):  # it just started: not again
            write("c", 2, conn.grant_epoch)
        monkeypatch.setattr(store_process, "RESTART_AFTER", 0.0)  # as 5 s later
        assert write("c", 2, conn.grant_epoch) == Counter({"Observation": 2})  # a new process
        assert store.pid() not in (None, first)
        assert stored(runtime, conn.id) == {"Observation": 5}
    finally:
        store.close()
    assert store.pid() is None


def test_a_sync_whose_store_process_dies_fails_as_tethers_own_failure(
    client, member: MemberCtx, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync ends in ERROR (PATIENT_RETRIEVAL_ERROR: retried soon), not RETRIEVED, and keeps
    what was committed; the next sync, from a new store process, completes."""
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    store = StoreProcess(runtime.db.url)
    store.warm()
    pid = store.pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the sync's first write waits in it...
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(
                run_sync,
                runtime,
                connection_pk=conn.id,
                epoch=conn.grant_epoch,
                page_size=20,
                store=store,
            )
            wait_for(lambda: store.waiting() > 0)
            os.kill(pid, signal.SIGKILL)  # ...when it dies
            report = running.result(timeout=120)
        assert report is not None and report.status == "ERROR"
        assert codes(reload(runtime, conn.id)) == ["PATIENT_RETRIEVAL_ERROR"]
        monkeypatch.setattr(store_process, "RESTART_AFTER", 0.0)  # as a few seconds later
        after = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, store=store)
        assert after is not None and after.status == "RETRIEVED", after.errors
        assert reload(runtime, conn.id).resource_counts == stored(runtime, conn.id)
    finally:
        store.close()


def test_the_store_process_keeps_search_values_whatever_they_hold(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    """A request carries each row's search values as their JSON text (JSON inside JSON) and
    the process hands that text to SQLite as it is: quotes, backslashes, control characters
    and non-ASCII text come back as they were, and a row with none stores none."""
    from tether.sync.checks import stamped

    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    awkward = ['say "hi"', "back\\slash", "café 日本 🩺", "tab\tand\nnewline"]
    system = 'urn:x"y\\z'
    rows = [
        stamped(
            "Observation",
            {"id": f"aw-{i}", "code": {"coding": [{"system": system, "code": code}]}},
        )
        for i, code in enumerate(awkward)
    ]
    rows.append(stamped("Observation", {"id": "aw-none", "status": "final"}))
    store = StoreProcess(runtime.db.url)
    try:
        written = store.submit(
            connection_pk=conn.id, epoch=conn.grant_epoch, member_id=member.member_id, rows=rows
        ).result(timeout=60)
    finally:
        store.close()
    assert written == Counter({"Observation": 5})
    with runtime.db.read() as session:
        found = session.execute(
            select(FhirSearchValue.name, FhirSearchValue.system, FhirSearchValue.code).where(
                FhirSearchValue.member_id == member.member_id
            )
        ).all()
    assert sorted(found) == sorted(("code", system, code) for code in awkward)
