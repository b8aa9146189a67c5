"""The sync lifecycle against the sandbox: full, incremental, and every fault knob."""

import json

import orjson
import pytest
from sqlalchemy import select

from tests.conftest import MemberCtx, make_member
from tests.sync.helpers import codes, connected, observations, reload, stored
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.store.models import AuditEvent, Connection, FhirResource
from tether.sync.run import run_sync

CLINIC = "sandbox-clinic"
PATIENT = "clinic-1"
FAULTS: list[int] = []  # faults the sandbox injected during each _sync_with


def test_full_then_incremental_sync(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    assert conn.sync_status == "PENDING"
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, page_size=20)
    assert report is not None
    assert report.status == "RETRIEVED", report.errors
    after = reload(runtime, conn.id)
    counts = stored(runtime, conn.id)
    assert after.sync_status == "RETRIEVED" and after.sync_errors == []
    assert after.last_synced_at is not None and after.next_sync_at is not None
    assert after.resource_counts == counts
    assert counts["Patient"] == 1 and counts["Observation"] > 20  # several pages
    assert report.written == sum(counts.values())

    view = client.get(f"/v1/connections/{CLINIC}", headers=member.headers).json()
    assert view["syncStatus"] == "RETRIEVED"
    assert view["resourceCounts"] == counts
    bundle = client.get(
        "/v1/fhir/Observation", params={"_count": 10}, headers=member.headers
    ).json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert len(bundle["entry"]) == 10
    assert all(e["resource"]["meta"]["source"] == CLINIC for e in bundle["entry"])
    assert any(link["relation"] == "next" for link in bundle["link"])
    # Page through everything with the next links: every Observation exactly once.
    seen, url = [], "/v1/fhir/Observation?_count=50"
    while url:
        page = client.get(url, headers=member.headers).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = nxt[0] if nxt else ""
    assert len(seen) == len(set(seen)) == counts["Observation"]

    # Incremental: only what changed at the source since is fetched, and only new versions
    # are written (and stamped by tether); nothing duplicates.
    with runtime.db.read() as session:
        before = dict(
            session.execute(
                select(FhirResource.resource_id, FhirResource.changed_at).where(
                    FhirResource.connection_id == conn.id
                )
            ).all()
        )
        picked = session.scalars(
            select(FhirResource.data)
            .where(FhirResource.connection_id == conn.id)
            .where(FhirResource.resource_type == "Observation")
            .limit(3)
        ).all()
    changed = [{**json.loads(text), "meta": {}, "status": "amended"} for text in picked]
    sandbox.add(CLINIC, PATIENT, changed)
    again = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, page_size=20)
    assert again is not None and again.status == "RETRIEVED"
    assert again.written == 3
    assert stored(runtime, conn.id) == counts
    with runtime.db.read() as session:
        after_stamps = dict(
            session.execute(
                select(FhirResource.resource_id, FhirResource.changed_at).where(
                    FhirResource.connection_id == conn.id
                )
            ).all()
        )
    moved = {rid for rid, stamp in after_stamps.items() if stamp != before[rid]}
    assert moved == {r["id"] for r in changed}
    assert all(after_stamps[rid] > before[rid] for rid in moved)


def test_another_members_data_is_invisible(
    client, member: MemberCtx, other_member: MemberCtx, runtime: Runtime
) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    mine = client.get("/v1/fhir/Patient", headers=member.headers).json()
    assert len(mine["entry"]) == 1
    theirs = client.get("/v1/fhir/Patient", headers=other_member.headers).json()
    assert theirs["entry"] == []
    filtered = client.get(
        "/v1/fhir/Patient", params={"connectionId": CLINIC}, headers=other_member.headers
    )
    # A FHIR search filter that names someone else's connection matches nothing.
    assert filtered.status_code == 200 and filtered.json()["entry"] == []
    read = client.get(f"/v1/fhir/Patient/{PATIENT}", headers=other_member.headers)
    assert read.status_code == 404


def test_stale_epoch_or_second_run_does_nothing(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    assert run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch + 1) is None
    assert reload(runtime, conn.id).sync_status == "PENDING"
    assert stored(runtime, conn.id) == {}


def test_every_finished_sync_is_audited(client, member: MemberCtx, runtime: Runtime) -> None:
    """Finishing a sync records ``sync.<status>`` (the claim moved it to RETRIEVING, without a
    record) with what was written and the error codes; the authorization status is not in it."""
    from sqlalchemy import select

    conn = connected(client, member, runtime, CLINIC, PATIENT)
    first = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    again = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert first is not None and again is not None and again.status == "RETRIEVED"
    with runtime.db.read() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == [
        "connection.authorized",
        "sync.retrieved",
        "sync.retrieved",
    ]
    for event in events[1:]:
        assert (event.actor, event.from_status, event.to_status) == ("system:sync", None, None)
    # The first sync also read the Practitioners the record refers to; the second had none
    # left to read (they are held), so its row does not mention references.
    practitioners = stored(runtime, conn.id)["Practitioner"]
    assert practitioners > 0
    assert events[1].detail == {
        "written": first.written,
        "errors": [],
        "references": {"fetched": practitioners, "missing": 0, "offsite": 0},
    }
    assert events[2].detail == {"written": again.written, "errors": []}


def _sync_with(runtime: Runtime, sandbox: Sandbox, conn, knobs: dict, **kw):
    sandbox.set_knobs(CLINIC, knobs)
    try:
        return run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, **kw)
    finally:
        FAULTS.append(sandbox.counters(CLINIC).faults)
        sandbox.reset(CLINIC)


def test_429_with_retry_after_is_honoured(client, member, runtime, sandbox) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    report = _sync_with(runtime, sandbox, conn, {"rate_429": 0.3, "retry_after": 0}, page_size=50)
    assert report is not None and report.status == "RETRIEVED", report.errors
    assert FAULTS[-1] > 0  # the sandbox did throttle


def test_429_with_retry_after_as_an_http_date_is_honoured(client, member, runtime, sandbox) -> None:
    """RFC 9110 lets Retry-After be an HTTP-date: the sync waits until then and goes on."""
    from tether.sync.history import runs_of

    conn = connected(client, member, runtime, CLINIC, PATIENT)
    knobs = {"rate_429": 0.1, "retry_after": 2, "retry_after_date": True}
    report = _sync_with(runtime, sandbox, conn, knobs, page_size=50)
    assert report is not None and report.status == "RETRIEVED", report.errors
    assert FAULTS[-1] > 0
    with runtime.db.read() as session:
        (run,) = runs_of(session, conn.id)
    # A date in whole seconds, two ahead: each throttled request waited up to two seconds
    # and (less the time the answer took to arrive) at least one.
    assert 0.5 * FAULTS[-1] <= run.throttled_seconds <= 2 * FAULTS[-1]
    assert run.retries >= FAULTS[-1]


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_long_retry_after_ends_in_rate_limited_and_reschedules(
    client, member, runtime, sandbox, as_date: bool
) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    knobs = {"rate_429": 1.0, "retry_after": 600, "retry_after_date": as_date}
    report = _sync_with(runtime, sandbox, conn, knobs)
    assert report is not None and report.status == "ERROR"
    after = reload(runtime, conn.id)
    assert "RATE_LIMITED" in codes(after)
    assert after.next_sync_at is not None
    # When the source said, not a backoff of tether's own (a date is in whole seconds).
    assert 590 < (after.next_sync_at - runtime.clock()).total_seconds() <= 601


def test_5xx_are_retried_then_reported(client, member, runtime, sandbox) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    flaky = _sync_with(runtime, sandbox, conn, {"rate_500": 0.25})
    assert flaky is not None and flaky.status == "RETRIEVED", flaky.errors
    down = _sync_with(runtime, sandbox, conn, {"rate_503": 1.0, "retry_after": 0})
    assert down is not None and down.status == "ERROR"
    after = reload(runtime, conn.id)
    assert codes(after) == ["SOURCE_UNAVAILABLE"]
    assert after.status == "CONNECTED"  # never expired by a network failure
    assert stored(runtime, conn.id)  # what the earlier sync stored is still there


def test_forbidden_type_is_a_partial_retrieval(client, member, runtime, sandbox) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    report = _sync_with(runtime, sandbox, conn, {"forbidden_types": ["Observation"]})
    assert report is not None and report.status == "RETRIEVED"
    after = reload(runtime, conn.id)
    assert codes(after) == ["PARTIAL_RETRIEVAL", "ACCESS_FORBIDDEN"]
    assert "Observation" in after.sync_errors[0]["text"]
    counts = stored(runtime, conn.id)
    assert "Observation" not in counts and counts["Patient"] == 1


@pytest.mark.parametrize("kind", ["json", "not_bundle"])
def test_malformed_page_writes_nothing_of_that_page(client, member, runtime, sandbox, kind) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    report = _sync_with(
        runtime, sandbox, conn, {"malformed_page": 2, "malformed_kind": kind}, page_size=10
    )
    assert report is not None
    after = reload(runtime, conn.id)
    assert "INVALID_RESPONSE" in codes(after)
    counts = stored(runtime, conn.id)
    # Types with more than one page stop at exactly one page (10 rows); nothing half-written.
    assert all(n <= 10 for n in counts.values()), counts


def test_endless_next_ends_in_an_error_not_a_hang(client, member, runtime, sandbox) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    report = _sync_with(runtime, sandbox, conn, {"endless_next": True}, max_pages=5)
    assert report is not None and report.status == "ERROR"
    assert "PAGING_LIMIT" in codes(reload(runtime, conn.id))


def test_stalled_source_times_out(client, member, runtime, sandbox) -> None:
    runtime.settings.http_timeout = 0.5
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    report = _sync_with(runtime, sandbox, conn, {"stall_seconds": 2})
    assert report is not None and report.status == "ERROR"
    assert codes(reload(runtime, conn.id)) == ["SOURCE_UNAVAILABLE"]


def test_latency_only_slows_things_down(client, member, runtime, sandbox) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    report = _sync_with(runtime, sandbox, conn, {"latency_ms": 20})
    assert report is not None and report.status == "RETRIEVED"


def test_expired_access_token_is_refreshed_once(client, member, runtime, sandbox) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    sandbox.expire_tokens(CLINIC)
    before = sandbox.counters(CLINIC).refreshes
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED", report.errors
    assert sandbox.counters(CLINIC).refreshes - before == 1
    assert reload(runtime, conn.id).status == "CONNECTED"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("refreshable", [True, False], ids=["refresh-token", "no-refresh-token"])
@pytest.mark.parametrize("lifetime", [30, 5])
def test_short_lived_access_token_is_refreshed_at_most_once(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox, lifetime: int, refreshable: bool
) -> None:
    """A token that expires within the refresh margin (the source issues only 30 s or 5 s
    tokens) is refreshed at most once, never without a refresh token, and then used as it is:
    the sync ends RETRIEVED instead of refreshing (or re-reading) until the token dies."""
    sandbox.knobs(CLINIC).access_token_lifetime = lifetime
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    if not refreshable:
        with runtime.db.write() as session:
            row = session.get(Connection, conn.id)
            assert row is not None
            row.refresh_token = None
    before = sandbox.counters(CLINIC).refreshes
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, page_size=1000)
    assert report is not None and report.status == "RETRIEVED", report.errors
    refreshes = sandbox.counters(CLINIC).refreshes - before
    assert refreshes <= (1 if refreshable else 0)
    if lifetime == 30:
        # The margin is a fifth of the lifetime (6 s): a fresh 30-second token is used as it is.
        assert refreshes == 0
    after = reload(runtime, conn.id)
    assert (after.status, after.sync_status, after.sync_errors) == ("CONNECTED", "RETRIEVED", [])


def test_refresh_margin_follows_the_token_lifetime() -> None:
    from tether.connections.tokens import refresh_margin

    assert refresh_margin(3600).total_seconds() == 60  # an hour-long token: a minute ahead
    assert refresh_margin(300).total_seconds() == 60
    assert refresh_margin(30).total_seconds() == 6
    assert refresh_margin(5).total_seconds() == 1
    assert refresh_margin(None).total_seconds() == 60  # lifetime unknown


def test_revoked_at_source_expires_the_connection(client, member, runtime, sandbox) -> None:
    conn = connected(client, member, runtime, CLINIC, PATIENT)
    assert reload(runtime, conn.id).next_sync_at is not None  # due now: its first sync
    sandbox.revoke_all(CLINIC)
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "ERROR"
    after = reload(runtime, conn.id)
    assert after.status == "EXPIRED"
    assert after.sync_status == "ERROR"
    assert codes(after)[0] == "AUTHORIZATION_EXPIRED"
    assert after.access_token is None and after.refresh_token is None
    assert after.next_sync_at is None  # no longer scheduled: it left CONNECTED


def test_memory_stays_bounded_by_a_few_pages(
    client, member: MemberCtx, other_member: MemberCtx, runtime: Runtime
) -> None:
    """Memory is bounded by a few pages, not by the record: the peak while syncing 20,000
    resources stays well under the size of the data that went through."""
    import tracemalloc

    from sqlalchemy import func, select

    from tether.store.models import FhirResource

    warm = make_member(runtime, member.tenant, "warm")
    first = connected(client, warm, runtime, CLINIC, "clinic-large")
    run_sync(
        runtime, connection_pk=first.id, epoch=first.grant_epoch
    )  # the sandbox (in this process) builds its record
    conn = connected(client, other_member, runtime, CLINIC, "clinic-large")
    tracemalloc.start()
    try:
        report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, page_size=50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report is not None and report.status == "RETRIEVED"
    assert report.written >= 20_000
    with runtime.db.read() as session:
        volume = session.scalar(
            select(func.sum(func.length(FhirResource.data))).where(
                FhirResource.connection_id == conn.id
            )
        )
    # Holding the record would take several times its JSON size in Python objects; the
    # streaming sync (with the sandbox serving pages in this same process) peaks at a fraction.
    # Measured: ~5.5 MB against 26 MB of JSON (up to ~10 MB on a loaded machine).
    assert peak < volume / 2, (peak, volume)


def test_a_sync_asked_for_twice_runs_once(client, member: MemberCtx, runtime: Runtime) -> None:
    """The connect's job and the sweep that found the connection due both ask for its first
    sync: whichever comes second finds a run that started after it was asked for, and does
    nothing. A request made while that run was going ("Sync now" mid-run) does run."""
    from sqlalchemy import select

    from tether.store.models import SyncRun

    conn = connected(client, member, runtime, CLINIC, PATIENT)
    asked = runtime.clock().timestamp()
    first = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, requested=asked)
    assert first is not None and first.status == "RETRIEVED"
    again = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, requested=asked)
    assert again is None
    with runtime.db.read() as session:
        began = session.scalar(select(SyncRun.started_at).where(SyncRun.connection_id == conn.id))
    assert began is not None
    mid_run = began.timestamp() + 0.001  # asked after the first run had started
    third = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, requested=mid_run)
    assert third is not None and third.status == "RETRIEVED"


def test_a_run_that_starts_while_the_sweep_claims_answers_the_sweep(
    client, member: MemberCtx, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep finds a new connection due while its connect's job is about to run it. That
    run starts after the sweep looked, so it answers the sweep's request: one run, not two."""
    from tether.store.models import SyncRun
    from tether.tasks import sync as tasks

    conn = connected(client, member, runtime, CLINIC, PATIENT)
    queued: list[dict[str, object]] = []
    monkeypatch.setattr(runtime, "enqueue", lambda name, **message: queued.append(message))
    claim = tasks.claim_due_syncs

    def claimed_while_a_run_starts(rt: Runtime, **options: object):  # type: ignore[no-untyped-def]
        found = claim(rt, **options)
        # The connect's own job runs while the sweep is still at work.
        first = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, trigger="initial")
        assert first is not None and first.status == "RETRIEVED"
        return found

    monkeypatch.setattr(tasks, "claim_due_syncs", claimed_while_a_run_starts)
    assert tasks.due_syncs(runtime) >= 1
    [message] = [m for m in queued if m["connection_pk"] == conn.id]
    requested = message["requested"]
    assert isinstance(requested, float)
    again = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch, requested=requested)
    assert again is None
    with runtime.db.read() as session:
        runs = session.scalars(select(SyncRun.trigger).where(SyncRun.connection_id == conn.id))
        assert list(runs) == ["initial"]


def test_a_new_version_replaces_its_search_values(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    """Each stored version is found by its own codes only: a changed resource's old search
    values go, an unchanged one's stay, and a batch of new rows has none to remove."""
    from sqlalchemy import func

    from tether.store.models import FhirSearchValue
    from tether.sync.checks import stamped
    from tether.sync.fenced_writes import upsert_resources

    conn = connected(client, member, runtime, CLINIC, PATIENT)

    def observation(rid: str, code: str) -> dict[str, object]:
        return {
            "id": rid,
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "effectiveDateTime": "2024-01-01T10:00:00Z",
        }

    def write(resources: list[dict[str, object]]) -> None:
        with runtime.db.write() as session:
            upsert_resources(
                session,
                member_id=member.member_id,
                connection_pk=conn.id,
                epoch=conn.grant_epoch,
                rows=[stamped("Observation", r) for r in resources],
                now=runtime.clock(),
            )

    def codes_of(rid: str) -> set[str | None]:
        with runtime.db.read() as session:
            pk = session.scalar(
                select(FhirResource.id).where(
                    FhirResource.connection_id == conn.id, FhirResource.resource_id == rid
                )
            )
            return set(
                session.scalars(
                    select(FhirSearchValue.code).where(
                        FhirSearchValue.resource_pk == pk, FhirSearchValue.name == "code"
                    )
                )
            )

    write([observation(f"sv-{i}", "1111-1") for i in range(1200)])
    assert codes_of("sv-0") == codes_of("sv-1199") == {"1111-1"}
    without_code = {"id": "sv-2", "status": "final"}  # a new version found by nothing
    write([observation("sv-0", "2222-2"), observation("sv-1", "1111-1"), without_code])
    assert codes_of("sv-0") == {"2222-2"}  # changed: the old code is gone
    assert codes_of("sv-1") == {"1111-1"}  # unchanged: left as it was
    assert codes_of("sv-2") == set()  # its old code and date went with the old version
    with runtime.db.read() as session:
        values = session.scalar(
            select(func.count())
            .select_from(FhirSearchValue)
            .where(FhirSearchValue.member_id == member.member_id)
        )
    assert values == 1199 * 2  # a code and a date each but sv-2's, nothing doubled


def test_a_batch_is_a_few_statements_whatever_its_size(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    """The writer's statements do not multiply with the batch's rows, and on SQLite none of
    them hands back a row per resource (RETURNING): the driver gives the GIL up around each
    row's step, and a store that steps per row crawls beside a thread preparing pages."""
    from sqlalchemy import event

    from tether.sync.fenced_writes import upsert_resources

    conn = connected(client, member, runtime, CLINIC, PATIENT)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    def write(prefix: str, size: int, *, epoch: int) -> tuple[int, list[str]]:
        rows = observations(prefix, size)
        statements.clear()
        event.listen(runtime.db.engine, "before_cursor_execute", count)
        try:
            with runtime.db.write() as session:
                # SQLite's statements go to the driver's connection: SQLAlchemy's events miss them
                driver = session.connection().connection.driver_connection
                if runtime.db.sqlite:
                    driver.set_trace_callback(statements.append)
                written = upsert_resources(
                    session,
                    member_id=member.member_id,
                    connection_pk=conn.id,
                    epoch=epoch,
                    rows=rows,
                    now=runtime.clock(),
                )
                if runtime.db.sqlite:
                    driver.set_trace_callback(None)
        finally:
            event.remove(runtime.db.engine, "before_cursor_execute", count)
        return written.total(), list(statements)

    small, small_sql = write("few", 3, epoch=conn.grant_epoch)
    large, large_sql = write("many", 3000, epoch=conn.grant_epoch)
    assert (small, large) == (3, 3000)
    assert len(large_sql) == len(small_sql) <= 6  # begin, upsert, delete or not, values, ...
    same, same_sql = write("many", 3000, epoch=conn.grant_epoch)
    assert same == 0 and len(same_sql) < len(large_sql)  # nothing new: nothing written
    again, _ = write("many", 3000, epoch=conn.grant_epoch + 1)  # a new grant rewrites all
    assert again == 3000
    if runtime.db.sqlite:
        assert not any("RETURNING" in sql.upper() for sql in small_sql + large_sql)


def test_a_syncs_claim_and_outcome_write_the_connections_row_once_each(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    """The claim checks the member and tenant in one query, and the outcome's reads come
    before the row changes, so each writes the connection's row with one UPDATE (every extra
    one is a round trip and a dead row version, a thousand times a minute on a busy worker)."""
    from sqlalchemy import event

    from tether.sync.claim import claim_sync
    from tether.sync.outcome import finish_sync
    from tether.sync.pipeline import Progress

    conn = connected(client, member, runtime, CLINIC, PATIENT)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()).lower())

    def traced(fn):  # type: ignore[no-untyped-def]
        statements.clear()
        event.listen(runtime.db.engine, "before_cursor_execute", count)
        try:
            return fn()
        finally:
            event.remove(runtime.db.engine, "before_cursor_execute", count)

    claim = traced(lambda: claim_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch))
    assert claim is not None
    assert sum(s.startswith("update connections") for s in statements) == 1
    assert not any(s.startswith("select members") for s in statements)
    progress = Progress(done=set(claim.types), written=0)
    report = traced(lambda: finish_sync(runtime, claim=claim, progress=progress, trigger="manual"))
    assert report is not None and report.status.value == "RETRIEVED"
    assert sum(s.startswith("update connections") for s in statements) == 1
    assert sum(s.startswith("select members") for s in statements) == 1
    # The history: the run's insert, and its prune to the newest hundred as one statement.
    assert [s.split()[0] for s in statements if "sync_runs" in s] == ["insert", "delete"]
    after = reload(runtime, conn.id)
    assert (after.sync_status, after.sync_heartbeat_at) == ("RETRIEVED", None)
    assert after.last_synced_at is not None and after.schedule is not None
    with runtime.db.read() as session:
        audited = session.scalars(
            select(AuditEvent.action).where(AuditEvent.member_id == member.member_id)
        ).all()
    assert "sync.retrieved" in audited


def test_stored_text_is_the_resource_exactly_whatever_it_holds(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    """The writer sends a batch's rows as one JSON document on PostgreSQL (JSON text inside
    JSON): quotes, backslashes, escaped control characters, non-ASCII text and a ``%`` come
    back byte for byte, and a missing ``meta.lastUpdated`` stays NULL."""
    from tether.sync.checks import STAMP_TAIL, stamped
    from tether.sync.fenced_writes import upsert_resources

    conn = connected(client, member, runtime, CLINIC, PATIENT)
    awkward = {
        "id": "awkward-1",
        "status": "final",
        "note": [{"text": 'He said "100 %" \\ twice;\ttab, \u0000nul, \u2028sep, café, 日本, 🩺'}],
        "meta": {"versionId": "7"},
    }
    plain = {"id": "plain-1", "status": "final", "meta": {"lastUpdated": "2024-05-01T10:00:00Z"}}
    rows = [stamped("Observation", dict(r)) for r in (awkward, plain)]
    with runtime.db.write() as session:
        now = runtime.clock()
        written = upsert_resources(
            session,
            member_id=member.member_id,
            connection_pk=conn.id,
            epoch=conn.grant_epoch,
            rows=rows,
            now=now,
        )
    assert written["Observation"] == 2
    with runtime.db.read() as session:
        stored = {
            r.resource_id: r
            for r in session.scalars(
                select(FhirResource).where(
                    FhirResource.connection_id == conn.id,
                    FhirResource.resource_id.in_(["awkward-1", "plain-1"]),
                )
            )
        }
    for row in rows:
        kept = stored[row[1]]
        assert kept.data.startswith(row[3]) and kept.data.endswith("Z" + STAMP_TAIL)
        assert kept.last_updated == row[2] and kept.content_hash == row[4]
    assert stored["awkward-1"].last_updated is None
    assert orjson.loads(stored["awkward-1"].data)["note"] == awkward["note"]
