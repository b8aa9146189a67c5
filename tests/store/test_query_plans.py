"""The queries that must stay index-backed at a million members (bench/scale.py measures them):
each is run through its service call, its SQL captured at the driver and EXPLAIN-ed on both
engines. On PostgreSQL sequential scans are made a last resort (a handful of rows would make
one the cheapest), so the plan says whether the index *can* serve the query: a partial index
only can when the query implies its predicate, which is what these tests pin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from tests.conftest import MemberCtx
from tether.audit import audit_events
from tether.bootstrap import ensure_directory
from tether.connections import schedule, views
from tether.connections.expiring import notify_expiring
from tether.connections.fleet import gauges as fleet_gauges
from tether.connections.tokens import claim_expiring_tokens
from tether.domain import Status
from tether.identity.principals import MemberPrincipal, TenantPrincipal
from tether.metrics import Gauge
from tether.runtime import Runtime
from tether.store.models import AuditEvent, Connection, Member, SyncSchedule, utcnow
from tether.sync.scheduling import claim_due_syncs
from tether.testing.plans import Plan, captured_sql, explain

SOURCES = ("sandbox-clinic", "sandbox-insurer", "sandbox-lab")


@pytest.fixture
def fleet(runtime: Runtime, member: MemberCtx) -> MemberCtx:
    """Three CONNECTED connections: one with a refresh token whose access token expires soon,
    one without a refresh token, one whose grant ends within the notice period."""
    ensure_directory(runtime)
    now = utcnow()
    with runtime.db.write() as session:
        for n, source in enumerate(SOURCES):
            conn = Connection(
                member_id=member.member_id,
                tenant_id=member.tenant.tenant_id,
                data_source_id=source,
                status="CONNECTED",
                sync_status="RETRIEVED",
                grant_epoch=1,
                access_token="sealed",
                refresh_token="sealed" if n != 1 else None,
                token_expires_at=now + timedelta(seconds=60 * (n + 1)),
                authorization_expires_at=now + timedelta(days=3) if n == 2 else None,
            )
            session.add(conn)
            session.flush()
            schedule.set_due(session, conn.id, now - timedelta(seconds=1))
    return member


def _plans(runtime: Runtime, call) -> list[Plan]:  # type: ignore[no-untyped-def]
    with captured_sql(runtime.db.engine) as captured:
        call()
    plans = explain(runtime.db.engine, captured, prefer_indexes=True)
    assert plans, "the call sent no query"
    return plans


def _the_one_on(plans: list[Plan], table: str) -> Plan:
    found = [p for p in plans if f" FROM {table}" in p.sql or f"UPDATE {table}" in p.sql]
    assert found, [p.sql for p in plans]
    return found[0]


def test_the_expiring_tokens_claim_reads_only_refreshable_tokens_by_expiry(
    runtime: Runtime, fleet: MemberCtx
) -> None:
    found: list[tuple[int, str]] = []
    plans = _plans(runtime, lambda: found.extend(claim_expiring_tokens(runtime, limit=200)))
    plan = _the_one_on(plans, "connections")
    assert plan.uses("ix_connections_refreshable"), plan.lines
    assert "connections" not in plan.full_scans
    assert len(found) == 2  # the one without a refresh token is not there


def test_the_expiring_grants_sweep_reads_only_grants_not_yet_noticed(
    runtime: Runtime, fleet: MemberCtx
) -> None:
    noticed: list[int] = []
    plans = _plans(runtime, lambda: noticed.append(notify_expiring(runtime)))
    plan = _the_one_on(plans, "connections")
    assert plan.uses("ix_connections_grant_end_unnoticed"), plan.lines
    assert noticed == [1]
    # Noticed: out of the partial index, so the next sweep finds nothing to walk.
    assert notify_expiring(runtime) == 0
    with runtime.db.write() as session:  # a new grant is noticed again
        conn = session.query(Connection).filter_by(data_source_id=SOURCES[2]).one()
        conn.grant_epoch += 1
    assert notify_expiring(runtime) == 1


def test_one_members_audit_page_reads_that_members_events_by_index(
    runtime: Runtime, fleet: MemberCtx
) -> None:
    tenant_id = fleet.tenant.tenant_id
    with runtime.db.write() as session:
        for n in range(3):
            session.add(
                AuditEvent(
                    tenant_id=tenant_id,
                    member_id=fleet.member_id if n else "mem_someone_else",
                    data_source_id=SOURCES[0],
                    action="connection.sync_completed",
                    actor="system:sync",
                )
            )
    pages = []
    plans = _plans(
        runtime,
        lambda: pages.append(audit_events(runtime, tenant_id=tenant_id, member_id=fleet.member_id)),
    )
    assert _the_one_on(plans, "audit_events").uses("ix_audit_events_member")
    assert [e.member_id for e in pages[0].items] == [fleet.member_id] * 2


def _scheduled_later(runtime: Runtime, fleet: MemberCtx, members: int) -> None:
    """``members`` more members of the tenant, CONNECTED to every source, due in an hour; on
    PostgreSQL the tables are analyzed (autovacuum's part), so its planner sees a schedule
    worth walking by index rather than three rows it might start from anywhere."""
    later = utcnow() + timedelta(hours=1)
    tenant_id = fleet.tenant.tenant_id
    ids = [f"mem_later_{n:05d}" for n in range(members)]
    with runtime.db.write() as session:
        session.execute(
            insert(Member), [{"id": m, "tenant_id": tenant_id, "external_id": m} for m in ids]
        )
        pks = session.scalars(
            insert(Connection).returning(Connection.id),
            [
                {
                    "member_id": m,
                    "tenant_id": tenant_id,
                    "data_source_id": source,
                    "status": "CONNECTED",
                    "sync_status": "RETRIEVED",
                    "grant_epoch": 1,
                }
                for m in ids
                for source in SOURCES
            ],
        ).all()
        session.execute(
            insert(SyncSchedule), [{"connection_id": pk, "due_at": later} for pk in pks]
        )
    if not runtime.db.sqlite:
        with runtime.db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def test_the_due_syncs_claim_walks_the_schedule_by_due_time(
    runtime: Runtime, fleet: MemberCtx
) -> None:
    _scheduled_later(runtime, fleet, members=400)
    with runtime.db.write() as session:  # 100 of them due too: a claim's worth of keys
        session.execute(
            update(SyncSchedule)
            .where(
                SyncSchedule.connection_id.in_(
                    select(SyncSchedule.connection_id)
                    .order_by(SyncSchedule.connection_id.desc())
                    .limit(100)
                )
            )
            .values(due_at=utcnow() - timedelta(seconds=1))
        )
    claimed: list[object] = []
    plans = _plans(runtime, lambda: claimed.extend(claim_due_syncs(runtime, limit=100)))
    plan = _the_one_on(plans, "sync_schedule")
    assert plan.uses("ix_sync_schedule_due"), "\n".join(plan.lines)
    assert len(claimed) == 100  # of the 103 due, soonest first
    # Then the connections of those due rows, by key (not the status index's every CONNECTED).
    plan = _the_one_on(plans, "connections")
    assert plan.uses("PRIMARY KEY") or plan.uses("pk_connections"), "\n".join(plan.lines)
    # The claim pushes the schedule's small rows ahead, never the connections' wide ones.
    writes = [p.sql.split()[1] for p in plans if p.sql.startswith("UPDATE")]
    assert writes == ["sync_schedule"], [p.sql for p in plans]


def test_the_tenants_status_page_is_an_index_walk(runtime: Runtime, fleet: MemberCtx) -> None:
    tenant = TenantPrincipal(fleet.tenant.tenant_id)
    plans = _plans(
        runtime, lambda: views.tenant_connections(runtime, tenant=tenant, status=[Status.EXPIRED])
    )
    assert _the_one_on(plans, "connections").uses("ix_connections_tenant_status")


def test_a_members_views_never_load_the_sealed_secrets(runtime: Runtime, fleet: MemberCtx) -> None:
    """Views read their own columns (VIEW_COLUMNS), never the tokens, credentials or cursor."""
    me = MemberPrincipal(fleet.tenant.tenant_id, fleet.member_id)
    with captured_sql(runtime.db.engine) as captured:
        listed = views.member_connections(runtime, member=me)
        one = views.member_connection(runtime, member=me, connection_id=SOURCES[0])
        page = views.tenant_connections(runtime, tenant=TenantPrincipal(fleet.tenant.tenant_id))
    assert [v.id for v in listed] == list(SOURCES)
    assert one.id == SOURCES[0]
    assert len(page.items) == 3
    reads = [s for s, _ in captured.statements if "FROM connections" in s]
    assert reads
    secret = ("access_token", "refresh_token", "credentials", "sync_cursor")
    assert not any(column in s for s in reads for column in secret), reads


def test_a_members_connections_are_found_by_the_unique_index_that_leads_with_the_member(
    runtime: Runtime, fleet: MemberCtx
) -> None:
    """connections.member_id has no index of its own (migration 0021): the unique
    (member_id, data_source_id) one serves the member's list and one connection."""
    me = MemberPrincipal(fleet.tenant.tenant_id, fleet.member_id)
    unique = "sqlite_autoindex_connections_1" if runtime.db.sqlite else "uq_connections_member_id"
    for call in (
        lambda: views.member_connections(runtime, member=me),
        lambda: views.member_connection(runtime, member=me, connection_id=SOURCES[1]),
    ):
        plan = _the_one_on(_plans(runtime, call), "connections")
        assert plan.uses(unique), plan.lines


def test_the_sync_backlog_gauge_reads_the_schedule_from_its_head(
    runtime: Runtime, fleet: MemberCtx
) -> None:
    """The metrics scrape's oldest due sync: the due index from its oldest row, each row's
    connection by key, not every CONNECTED connection."""
    _scheduled_later(runtime, fleet, members=400)
    read: list[Gauge] = []
    plans = _plans(runtime, lambda: read.extend(fleet_gauges(runtime)))
    plan = next(p for p in plans if p.sql.startswith("SELECT sync_schedule.due_at"))
    assert plan.uses("ix_sync_schedule_due"), "\n".join(plan.lines)
    assert "connections" not in plan.full_scans
    assert not any(line for line in plan.lines if "ix_connections_fleet" in line), plan.lines
    backlog = next(g for g in read if g.name == "tether_sync_backlog_seconds")
    assert backlog.samples[0][1] >= 1  # the fixture's three were due a second before
