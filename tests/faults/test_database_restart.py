"""PostgreSQL restarted under tether: during a burst of API calls, during a sync, during a
delete. While the database is gone the API answers 503 problem documents (never a 500) and
``/readyz`` says so; afterwards every connection ends in a documented state, every job is
finished or re-driven by its sweep, and nothing is duplicated."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.conftest import MemberCtx
from tests.faults.conftest import PrivatePostgres
from tests.sync.helpers import connected, reload, stored, wait_for
from tether.connections.deletion import DELETE_STALE_SECONDS, run_delete
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.sandbox.data.records import Window
from tether.store.models import FhirResource
from tether.sync.claim import HEARTBEAT_STALE_SECONDS
from tether.sync.run import run_sync
from tether.tasks.connections import stale_deletes
from tether.tasks.sync import due_syncs

CLINIC = "sandbox-clinic"


def _is_unavailable(response: httpx.Response) -> bool:
    if response.status_code != 503:
        return False
    body = response.json()
    return (
        response.headers["content-type"] == "application/problem+json"
        and response.headers["retry-after"] == "5"
        and body["code"] == "DATABASE_UNAVAILABLE"
        and "Traceback" not in response.text
    )


def test_the_api_answers_503_while_the_database_is_gone_and_recovers(
    client: httpx.Client, member: MemberCtx, private_postgres: PrivatePostgres
) -> None:
    tenant = member.tenant.headers
    assert client.get("/v1/connections", headers=tenant).status_code == 200
    assert client.get("/readyz").status_code == 200

    statuses: list[int] = []
    bad: list[str] = []
    done = threading.Event()

    def burst() -> None:
        while not done.is_set():
            answer = client.get("/v1/connections", headers=tenant)
            statuses.append(answer.status_code)
            if answer.status_code != 200 and not _is_unavailable(answer):
                bad.append(f"{answer.status_code} {answer.text[:300]}")
            time.sleep(0.05)

    callers = [threading.Thread(target=burst) for _ in range(2)]
    for caller in callers:
        caller.start()
    try:
        time.sleep(0.3)
        private_postgres.stop("fast")  # every session is cut
        wait_for(lambda: 503 in statuses, timeout=20)
        down = client.get("/readyz")
        assert down.status_code == 503 and down.json()["database"] == "down"
        member_view = client.get("/v1/connections", headers=member.headers)
        assert _is_unavailable(member_view)
        graphql = client.post(
            "/graphql", json={"query": "{ getMemberConnections { id } }"}, headers=member.headers
        ).json()
        assert graphql["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"
        private_postgres.start()
        wait_for(lambda: statuses[-1] == 200, timeout=30)
    finally:
        done.set()
        for caller in callers:
            caller.join()
    assert bad == []
    assert 503 in statuses and statuses[-1] == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/connections", headers=member.headers).status_code == 200


def _counts(sandbox: Sandbox, patient: str) -> dict[str, int]:
    record = sandbox.catalog.record(CLINIC, patient)
    window = Window(None, False, None, False)
    return {t: record.count(t, window) for t in record.types()}


def _no_duplicates(runtime: Runtime, pk: int) -> None:
    with runtime.db.read() as session:
        rows = session.scalar(
            select(func.count()).select_from(FhirResource).where(FhirResource.connection_id == pk)
        )
        distinct = session.scalar(
            select(func.count()).select_from(
                select(FhirResource.resource_type, FhirResource.resource_id)
                .where(FhirResource.connection_id == pk)
                .distinct()
                .subquery()
            )
        )
    assert rows == distinct


def test_a_sync_cut_by_a_database_crash_is_re_driven_and_completes(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
    private_postgres: PrivatePostgres,
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-large")
    sandbox.set_knobs(CLINIC, {"latency_ms": 40})
    outcome: dict[str, Any] = {}

    def sync() -> None:
        try:
            outcome["report"] = run_sync(
                runtime, connection_pk=conn.id, epoch=conn.grant_epoch, page_size=200
            )
        except Exception as exc:  # the database went away under it
            outcome["error"] = exc

    running = threading.Thread(target=sync)
    running.start()
    wait_for(lambda: sum(stored(runtime, conn.id).values()) > 0, timeout=60)
    private_postgres.stop("immediate")  # a crash, in the middle of the sync
    running.join(timeout=120)
    assert not running.is_alive()
    private_postgres.start()
    sandbox.set_knobs(CLINIC, {"latency_ms": 0})

    # The run could not record its end: the connection is RETRIEVING with a heartbeat that
    # goes stale, and the due-syncs sweep queues it again then.
    cut = reload(runtime, conn.id)
    assert (cut.status, cut.sync_status) == ("CONNECTED", "RETRIEVING")
    assert due_syncs(runtime) == 0  # the heartbeat is still fresh
    real_clock = runtime.clock
    runtime.clock = lambda: real_clock() + timedelta(seconds=HEARTBEAT_STALE_SECONDS + 5)
    assert due_syncs(runtime) == 1
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED", report and report.errors
    expected = _counts(sandbox, "clinic-large")
    assert stored(runtime, conn.id) == expected
    assert reload(runtime, conn.id).resource_counts == expected
    _no_duplicates(runtime, conn.id)


def test_a_delete_cut_by_a_database_restart_is_finished_by_its_sweep(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    private_postgres: PrivatePostgres,
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    total = sum(stored(runtime, conn.id).values())
    assert total > 300
    accepted = client.delete(f"/v1/connections/{CLINIC}", headers=member.headers)
    assert accepted.status_code == 202 and accepted.json()["syncStatus"] == "DELETING"
    epoch = reload(runtime, conn.id).grant_epoch  # deleting ends the grant: a new epoch

    def crash_after_first_batch(count: int) -> None:
        private_postgres.stop("fast")

    failed = None
    try:
        run_delete(
            runtime,
            connection_pk=conn.id,
            epoch=epoch,
            batch=100,
            on_batch=crash_after_first_batch,
        )
    except Exception as exc:
        failed = exc
    assert failed is not None  # the second batch met no database
    private_postgres.start()
    assert sum(stored(runtime, conn.id).values()) == total - 100  # one batch, whole
    assert reload(runtime, conn.id).sync_status == "DELETING"

    real_clock = runtime.clock
    runtime.clock = lambda: real_clock() + timedelta(seconds=DELETE_STALE_SECONDS + 5)
    assert stale_deletes(runtime) == 1
    run_delete(runtime, connection_pk=conn.id, epoch=epoch)
    after = reload(runtime, conn.id)
    assert (after.status, after.sync_status) == ("DELETED", "DATA_DELETED")
    assert stored(runtime, conn.id) == {}
