"""A million members: the everyday queries at a health app's full size.

    python -m bench scale [--members N] [--samples N] [--engine sqlite|postgresql]

One tenant with N members (default 1,000,000), three connections each (3,000,000), two sync
runs for each connection that has synced, and 10 audit events per member (10,000,000) are
generated straight into the database (driver-level ``executemany`` on SQLite, ``COPY`` on
PostgreSQL), in the mix of statuses, sync errors, token expiries and grant ends a real fleet
has. On PostgreSQL ``VACUUM ANALYZE`` runs once after the fill, as autovacuum would; SQLite is
measured as tether runs it (no ``ANALYZE``).

Each operation is measured ``--samples`` times on random members (seeded), twice:

- **direct**: the service-layer call the REST, GraphQL and CLI adapters make (ORM, session,
  view objects), in this process;
- **HTTP**: the REST request over real HTTP on loopback to tether served by another process,
  authenticated as a real client is (member token or API key), after ``GET /healthz`` as the
  baseline round trip.

The sweeper's claim queries are measured direct only (no HTTP operation runs them). Before
each due-syncs claim, untimed, a run of connections is made due (as passing time does), so
every claim has real work; the sweep's whole claim (10 transactions) is shown but not judged
against a query's target. For each
operation, the SQL its direct call sends is captured and ``EXPLAIN``-ed; a full scan of one of
the big tables (members, connections, sync_runs, audit_events) is reported as such. The
database's size is stated.

Target (issue #17): p99 ≤ 10 ms direct and ≤ 20 ms over HTTP on both engines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from bench._support import (
    Stopwatch,
    Summary,
    bench_runtime,
    free_port,
    run_per_engine,
    server_version,
    table,
    tether_server,
)
from tether.accounts import members as members_service
from tether.audit import audit_events
from tether.bootstrap import ensure_directory
from tether.connections import views
from tether.connections.deletion import claim_stale_deletes
from tether.connections.expiring import notify_expiring
from tether.connections.sync_errors import sync_error
from tether.connections.tokens import claim_expiring_tokens
from tether.domain import Status
from tether.identity.api_keys import issue_api_key
from tether.identity.member_tokens import mint_member_token
from tether.identity.principals import MemberPrincipal, TenantPrincipal
from tether.runtime import Runtime
from tether.store.models import DataSource, SyncSchedule, Tenant
from tether.sync.history import connection_syncs
from tether.sync.scheduling import CLAIM_CHUNK, claim_due_syncs
from tether.tasks.sync import DUE_SYNCS_BATCH, SWEEP_BATCH
from tether.testing.plans import Captured, captured_sql, explain

TARGET_DIRECT_P99_MS = 10.0
TARGET_HTTP_P99_MS = 20.0
# Whole sweeps, several transactions each: shown, not judged against a query's target.
NOT_JUDGED = {f"due-syncs sweep's claim ({DUE_SYNCS_BATCH})"}
TENANT = "ten_scale"
CONNECTIONS_PER_MEMBER = 3
RUNS_PER_CONNECTION = 2
AUDIT_PER_MEMBER = 10
BIG_TABLES = ("members", "connections", "sync_schedule", "sync_runs", "audit_events")
CHUNK = 20_000

# (status, syncStatus, share in 100): the mix of a fleet some months old.
STATES = [
    ("CONNECTED", "RETRIEVED", 70),
    ("CONNECTED", "PENDING", 2),
    ("CONNECTED", "ERROR", 8),
    ("EXPIRED", "ERROR", 10),
    ("DISCONNECTED", "RETRIEVED", 6),
    ("DELETED", "DATA_DELETED", 3),
    ("ERROR", "ERROR", 1),
]
ERRORS = {
    ("EXPIRED", "ERROR"): [sync_error("AUTHORIZATION_EXPIRED")],
    ("CONNECTED", "ERROR"): [sync_error("SOURCE_UNAVAILABLE", "gave up after retries: HTTP 503")],
    ("ERROR", "ERROR"): [sync_error("INVALID_RESPONSE", "the token response was not JSON")],
}
TYPES = ("Patient", "Observation", "Condition", "MedicationRequest", "Encounter", "Immunization")
AUDIT_ACTIONS = [
    ("connection.authorized", None, "CONNECTED"),
    ("connection.sync_completed", None, None),
    ("connection.sync_completed", None, None),
    ("connection.sync_completed", None, None),
    ("connection.token_refreshed", None, None),
    ("connection.expired", "CONNECTED", "EXPIRED"),
    ("connection.disconnected", "CONNECTED", "DISCONNECTED"),
    ("connection.re_established", "EXPIRED", "CONNECTED"),
]
# Vault ciphertexts are opaque text of about these sizes (a 1 KB JWT access token sealed).
SEALED_ACCESS = "v1." + "A" * 1400
SEALED_REFRESH = "v1." + "B" * 180


def member_id(index: int) -> str:
    """A real-looking (random-spread, 80-bit hex) member id, recomputable from its index."""
    return "mem_" + hashlib.blake2b(index.to_bytes(8, "big"), digest_size=10).hexdigest()


# ---------------------------------------------------------------------------- the fill
class Loader:
    """Rows in at the driver: ``executemany`` on SQLite, ``COPY`` on PostgreSQL."""

    def __init__(self, runtime: Runtime) -> None:
        self.sqlite = runtime.db.sqlite
        self.raw = runtime.db.engine.raw_connection()
        if self.sqlite:  # a bulk load: a big page cache for the random-keyed indexes, no syncs
            self.raw.execute("PRAGMA cache_size=-2000000")
            self.raw.execute("PRAGMA synchronous=OFF")

    def ts(self, value: datetime) -> Any:
        # SQLAlchemy keeps SQLite datetimes as naive UTC text; psycopg takes aware datetimes.
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else value

    def load(self, name: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        count = 0
        cursor = self.raw.cursor()
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})"
            for chunk in _chunks(rows, CHUNK):
                cursor.execute("BEGIN")  # tether's connections leave transactions to the caller
                cursor.executemany(sql, chunk)
                count += len(chunk)
                self.raw.commit()
        else:
            for chunk in _chunks(rows, 200_000):
                with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in chunk:
                        copy.write_row(row)
                count += len(chunk)
                self.raw.commit()
            if "id" in columns and name != "members":  # integer ids given: move the sequence
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), max(id)) FROM {name}"
                )
                self.raw.commit()
        cursor.close()
        return count

    def close(self) -> None:
        self.raw.close()


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Fleet:
    """The generated fleet's shape, so the measurements can name real members and rows."""

    def __init__(self, members: int, sources: list[str], now: datetime) -> None:
        self.members = members
        self.sources = sources
        self.now = now
        self.weighted = [(s, ss) for s, ss, share in STATES for _ in range(share)]

    @property
    def connections(self) -> int:
        return self.members * CONNECTIONS_PER_MEMBER

    @property
    def audit_events(self) -> int:
        return self.members * AUDIT_PER_MEMBER

    def source_of(self, pk: int) -> str:
        """Connection ``pk`` (1-based)'s source: three distinct ones per member."""
        i = pk - 1
        return self.sources[(i + i // 3 * 7) % len(self.sources)]

    def state_of(self, pk: int) -> tuple[str, str]:
        return self.weighted[(pk * 37) % len(self.weighted)]


def fill(runtime: Runtime, fleet: Fleet, log: Callable[[str], None]) -> dict[str, float]:
    loader = Loader(runtime)
    ts = loader.ts
    now = fleet.now
    seconds: dict[str, float] = {}
    try:
        started = time.perf_counter()
        created = ts(now - timedelta(days=200))
        loader.load(
            "members",
            ("id", "tenant_id", "external_id", "created_at"),
            ((member_id(i), TENANT, f"user-{i}", created) for i in range(fleet.members)),
        )
        seconds["members"] = time.perf_counter() - started
        log(f"members {fleet.members:,} in {seconds['members']:.0f} s")

        started = time.perf_counter()
        loader.load("connections", CONNECTION_COLUMNS, _connections(fleet, ts))
        loader.load("sync_schedule", ("connection_id", "due_at"), _schedule(fleet, ts))
        seconds["connections"] = time.perf_counter() - started
        log(f"connections {fleet.connections:,} in {seconds['connections']:.0f} s")

        started = time.perf_counter()
        runs = loader.load("sync_runs", RUN_COLUMNS, _runs(fleet, ts))
        seconds["sync_runs"] = time.perf_counter() - started
        log(f"sync runs {runs:,} in {seconds['sync_runs']:.0f} s")

        started = time.perf_counter()
        loader.load("audit_events", AUDIT_COLUMNS, _audit(fleet, ts))
        seconds["audit_events"] = time.perf_counter() - started
        log(f"audit events {fleet.audit_events:,} in {seconds['audit_events']:.0f} s")
    finally:
        loader.close()
    return seconds


CONNECTION_COLUMNS = (
    "id", "member_id", "tenant_id", "data_source_id", "status", "sync_status", "sync_errors",
    "created_at", "status_updated_at", "last_synced_at", "grant_epoch", "access_token",
    "refresh_token", "token_expires_at", "token_lifetime", "scope", "patient_id",
    "resource_counts", "sync_cursor", "authorization_expires_at",
    "expiring_notice_epoch",
)  # fmt: skip
SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"


def _connections(fleet: Fleet, ts: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    now = fleet.now
    counts = json.dumps({t: 10 + 7 * n for n, t in enumerate(TYPES)})
    cursor = json.dumps({t: "2026-11-30T08:00:00Z" for t in TYPES})
    errors = {key: json.dumps(value) for key, value in ERRORS.items()}
    no_errors = "[]"
    created = ts(now - timedelta(days=150))
    for pk in range(1, fleet.connections + 1):
        status, sync_status = fleet.state_of(pk)
        connected = status == "CONNECTED"
        synced = sync_status != "PENDING"
        # Grants are noticed 14 days ahead: those within the notice have had it (steady state).
        grant_end = None
        noticed = None
        if connected and pk % 5 < 2:  # 40 % of live grants say when they end (≤ 90 days)
            grant_end = now + timedelta(minutes=(pk * 7919) % (90 * 24 * 60))
            noticed = 1 if grant_end - now <= timedelta(days=14) else None
        yield (
            pk,
            member_id((pk - 1) // CONNECTIONS_PER_MEMBER),
            TENANT,
            fleet.source_of(pk),
            status,
            sync_status,
            errors.get((status, sync_status), no_errors),
            created,
            ts(now - timedelta(minutes=pk % 10_000)),
            ts(now - timedelta(minutes=pk % 360)) if synced else None,
            1,
            SEALED_ACCESS if connected else None,
            SEALED_REFRESH if connected and pk % 10 else None,  # 1 in 10 sources: no refresh
            # one-hour tokens, refreshed 5 minutes ahead: spread over the coming hour; those
            # without a refresh token expired long ago
            ts(now + timedelta(seconds=300 + (pk * 131) % 3300))
            if connected and pk % 10
            else ts(now - timedelta(days=3)),
            3600,
            SCOPE,
            f"pat-{pk}",
            counts if synced else "{}",
            cursor if synced else "{}",
            ts(grant_end) if grant_end else None,
            noticed,
        )


def _schedule(fleet: Fleet, ts: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    """The CONNECTED connections' next syncs: every six hours, a few hundred due between two
    sweeps."""
    for pk in range(1, fleet.connections + 1):
        if fleet.state_of(pk)[0] == "CONNECTED":
            yield pk, ts(fleet.now + timedelta(seconds=(pk * 7) % 21_600 - 60))


RUN_COLUMNS = (
    "id", "connection_id", "trigger", "started_at", "finished_at", "outcome", "counts",
    "pages", "requests", "retries", "throttled_seconds", "errors",
)  # fmt: skip


def _runs(fleet: Fleet, ts: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    """Each synced connection's last two runs, in time order (runs of many connections
    interleave, as they do when a worker runs them)."""
    counts = json.dumps({t: {"added": 3, "updated": 1} for t in TYPES})
    failed = json.dumps(ERRORS[("CONNECTED", "ERROR")])
    pk = 0
    for round_ in range(RUNS_PER_CONNECTION):
        finished = fleet.now - timedelta(hours=6 * (RUNS_PER_CONNECTION - round_))
        started, ended = ts(finished - timedelta(seconds=9)), ts(finished)
        trigger = "initial" if round_ == 0 else "scheduled"
        for conn in range(1, fleet.connections + 1):
            _, sync_status = fleet.state_of(conn)
            if sync_status == "PENDING":
                continue
            outcome = sync_status if sync_status in ("RETRIEVED", "ERROR") else "RETRIEVED"
            pk += 1
            yield (
                pk,
                conn,
                trigger,
                started,
                ended,
                outcome,
                counts,
                14,
                18,
                0,
                0.0,
                failed if outcome == "ERROR" else "[]",
            )


AUDIT_COLUMNS = (
    "id", "tenant_id", "member_id", "data_source_id", "action", "actor", "from_status",
    "to_status", "detail", "at",
)  # fmt: skip


def _audit(fleet: Fleet, ts: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    """Events over 200 days, each about a pseudo-random member (so one member's are spread
    through the whole log, as they are)."""
    total = fleet.audit_events
    start = fleet.now - timedelta(days=200)
    step = timedelta(days=200) / total
    detail = json.dumps({"added": 42, "updated": 3})
    prime = 1_000_003  # coprime with any member count that is not its multiple
    for pk in range(1, total + 1):
        index = (pk * prime) % fleet.members
        action, before, after = AUDIT_ACTIONS[pk % len(AUDIT_ACTIONS)]
        conn = index * CONNECTIONS_PER_MEMBER + 1 + pk % CONNECTIONS_PER_MEMBER
        yield (
            pk,
            TENANT,
            member_id(index),
            fleet.source_of(conn),
            action,
            "system:sync" if before is None else f"member:{member_id(index)}",
            before,
            after,
            detail,
            ts(start + step * pk),
        )


# ---------------------------------------------------------------------------- measuring
def plans_of(runtime: Runtime, captured: Captured) -> list[dict[str, Any]]:
    return [
        {
            "sql": plan.sql[:300],
            "plan": plan.lines,
            "full_scans": [t for t in plan.full_scans if t in BIG_TABLES],
        }
        for plan in explain(runtime.db.engine, captured)
    ]


Operation = Callable[[random.Random], Any]


class Prepared:
    """An operation with untimed preparation before each call (what makes its work real)."""

    def __init__(self, prepare: Operation, operation: Operation) -> None:
        self.prepare = prepare
        self.operation = operation

    def __call__(self, rng: random.Random) -> Any:
        self.prepare(rng)
        return self.operation(rng)


def measure(operation: Operation, samples: int, seed: int) -> Summary:
    rng = random.Random(seed)
    prepare = operation.prepare if isinstance(operation, Prepared) else None
    call = operation.operation if isinstance(operation, Prepared) else operation
    for _ in range(5):  # warm: statements compiled and cached, pool filled
        operation(rng)
    timings = []
    for _ in range(samples):
        if prepare is not None:
            prepare(rng)
        with Stopwatch() as sw:
            call(rng)
        timings.append(sw.ms)
    return Summary.of(timings)


def make_due(runtime: Runtime, fleet: Fleet, count: int) -> Operation:
    """Make the CONNECTED connections among ``count * 5 // 4`` consecutive ones due now, as
    the passing time does between two sweeps (the claim then has real work each call)."""

    def prepare(rng: random.Random) -> None:
        start = rng.randrange(1, fleet.connections - count * 2)
        with runtime.db.write() as session:
            session.execute(
                update(SyncSchedule)
                .where(
                    SyncSchedule.connection_id >= start,
                    SyncSchedule.connection_id < start + count * 5 // 4,
                )
                .values(due_at=runtime.clock() - timedelta(seconds=1))
            )

    return prepare


def direct_operations(runtime: Runtime, fleet: Fleet, key_id: str) -> dict[str, Operation]:
    tenant = TenantPrincipal(TENANT, key_id)
    engine = runtime.settings.database_url.split(":", 1)[0]
    created = iter(range(10**9))

    def member(rng: random.Random) -> tuple[int, MemberPrincipal]:
        index = rng.randrange(fleet.members)
        return index, MemberPrincipal(TENANT, member_id(index), key_id)

    def connections(rng: random.Random) -> Any:
        _, who = member(rng)
        found = views.member_connections(runtime, member=who)
        assert len(found) == CONNECTIONS_PER_MEMBER, found
        return found

    def one(rng: random.Random) -> Any:
        index, who = member(rng)
        pk = index * CONNECTIONS_PER_MEMBER + 1 + rng.randrange(CONNECTIONS_PER_MEMBER)
        return views.member_connection(runtime, member=who, connection_id=fleet.source_of(pk))

    def history(rng: random.Random) -> Any:
        index, who = member(rng)
        pk = index * CONNECTIONS_PER_MEMBER + 1 + rng.randrange(CONNECTIONS_PER_MEMBER)
        return connection_syncs(runtime, member=who, connection_id=fleet.source_of(pk))

    def expired_page(rng: random.Random) -> Any:
        page = views.tenant_connections(
            runtime, tenant=tenant, status=[Status.EXPIRED], after=rng.randrange(fleet.connections)
        )
        return page

    def create(_rng: random.Random) -> Any:
        view, made = members_service.create_member(
            runtime, tenant_id=TENANT, external_id=f"new-{engine}-direct-{next(created)}"
        )
        assert made
        return view

    def mint(rng: random.Random) -> Any:
        _, who = member(rng)
        return mint_member_token(runtime, tenant_id=TENANT, member_id=who.member_id, key_id=key_id)

    def audit_deep(rng: random.Random) -> Any:
        after = fleet.audit_events - rng.randrange(fleet.audit_events // 5) - 200
        page = audit_events(runtime, tenant_id=TENANT, after=after)
        assert len(page.items) == 100
        return page

    def audit_member(rng: random.Random) -> Any:
        _, who = member(rng)
        page = audit_events(runtime, tenant_id=TENANT, member_id=who.member_id)
        assert page.items, who
        return page

    return {
        "getMemberConnections": connections,
        "one connection": one,
        "a connection's sync history": history,
        "tenant page, status=EXPIRED": expired_page,
        "member create": create,
        "member token mint": mint,
        "audit page deep in the log": audit_deep,
        "audit page of one member": audit_member,
        f"claim due syncs (one transaction, {CLAIM_CHUNK})": Prepared(
            make_due(runtime, fleet, CLAIM_CHUNK),
            lambda _r: claim_due_syncs(runtime, limit=CLAIM_CHUNK),
        ),
        # not one query: CLAIM_CHUNK at a time, so the write lock is not held for all of it
        f"due-syncs sweep's claim ({DUE_SYNCS_BATCH})": Prepared(
            make_due(runtime, fleet, DUE_SYNCS_BATCH),
            lambda _r: claim_due_syncs(runtime, limit=DUE_SYNCS_BATCH),
        ),
        f"claim expiring tokens ({SWEEP_BATCH})": lambda _r: claim_expiring_tokens(
            runtime, limit=SWEEP_BATCH
        ),
        "claim stale deletes": lambda _r: claim_stale_deletes(runtime),
        "expiring-grants sweep": lambda _r: notify_expiring(runtime),
    }


def http_operations(
    api: httpx.Client, fleet: Fleet, key: str, tokens: dict[int, str]
) -> dict[str, Operation]:
    tenant_headers = {"Authorization": f"Bearer {key}"}
    holders = list(tokens)
    created = iter(range(10**9))

    def member(rng: random.Random) -> tuple[int, dict[str, str]]:
        index = rng.choice(holders)
        return index, {"Authorization": f"Bearer {tokens[index]}"}

    def get(path: str, headers: dict[str, str], **params: Any) -> Any:
        answer = api.get(path, headers=headers, params=params)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        return answer

    def connections(rng: random.Random) -> Any:
        _, headers = member(rng)
        return get("/v1/connections", headers)

    def one(rng: random.Random) -> Any:
        index, headers = member(rng)
        pk = index * CONNECTIONS_PER_MEMBER + 1 + rng.randrange(CONNECTIONS_PER_MEMBER)
        return get(f"/v1/connections/{fleet.source_of(pk)}", headers)

    def history(rng: random.Random) -> Any:
        index, headers = member(rng)
        pk = index * CONNECTIONS_PER_MEMBER + 1 + rng.randrange(CONNECTIONS_PER_MEMBER)
        return get(f"/v1/connections/{fleet.source_of(pk)}/syncs", headers)

    def expired_page(rng: random.Random) -> Any:
        after = rng.randrange(fleet.connections)
        return get("/v1/connections", tenant_headers, status="EXPIRED", after=after)

    def create(_rng: random.Random) -> Any:
        answer = api.post(
            "/v1/members",
            headers=tenant_headers,
            json={"externalId": f"new-http-{next(created)}"},
        )
        assert answer.status_code == 201, answer.text[:300]
        return answer

    def mint(rng: random.Random) -> Any:
        index = rng.randrange(fleet.members)
        answer = api.post(f"/v1/members/{member_id(index)}/tokens", headers=tenant_headers)
        assert answer.status_code == 201, answer.text[:300]
        return answer

    def audit_deep(rng: random.Random) -> Any:
        after = fleet.audit_events - rng.randrange(fleet.audit_events // 5) - 200
        return get("/v1/audit-events", tenant_headers, after=after)

    def audit_member(rng: random.Random) -> Any:
        index = rng.randrange(fleet.members)
        return get("/v1/audit-events", tenant_headers, memberId=member_id(index))

    return {
        "GET /healthz (baseline)": lambda _r: get("/healthz", {}),
        "getMemberConnections": connections,
        "one connection": one,
        "a connection's sync history": history,
        "tenant page, status=EXPIRED": expired_page,
        "member create": create,
        "member token mint": mint,
        "audit page deep in the log": audit_deep,
        "audit page of one member": audit_member,
    }


def database_size(runtime: Runtime) -> dict[str, Any]:
    if runtime.db.sqlite:
        path = runtime.settings.database_url.split("///", 1)[1]
        total = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        return {"total_mb": round(total / 2**20)}
    with runtime.db.engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
        tables = {
            name: round(
                conn.exec_driver_sql(f"SELECT pg_total_relation_size('{name}')").scalar() / 2**20
            )
            for name in BIG_TABLES
        }
    return {"total_mb": round(total / 2**20), "tables_mb": tables}


def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()

    def log(message: str) -> None:
        print(f"[{engine}] {message}", flush=True)

    with bench_runtime(engine, public_base_url=f"http://127.0.0.1:{port}") as runtime:
        ensure_directory(runtime)
        with runtime.db.write() as session:
            session.add(Tenant(id=TENANT, name="Scale", return_urls=["https://app.test/back"]))
        with runtime.db.read() as session:
            sources = list(session.scalars(select(DataSource.id).order_by(DataSource.id)))
        fleet = Fleet(args.members, sources, datetime.now(UTC))
        started = time.perf_counter()
        fill_seconds = fill(runtime, fleet, log)
        if engine == "postgresql":
            with runtime.db.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            with runtime.db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        fill_seconds["total"] = time.perf_counter() - started
        size = database_size(runtime)
        log(f"filled in {fill_seconds['total']:.0f} s; {size['total_mb']:,} MB")
        issued = issue_api_key(runtime, tenant_id=TENANT)
        key_id = issued.key_id

        direct: dict[str, dict[str, Any]] = {}
        for seed, (name, operation) in enumerate(direct_operations(runtime, fleet, key_id).items()):
            with captured_sql(runtime.db.engine) as captured:
                operation(random.Random(seed))
            summary = measure(operation, args.samples, seed)
            direct[name] = {"ms": summary.as_dict(), "plans": plans_of(runtime, captured)}
            log(f"direct {name}: p99 {summary.p99:.2f} ms")

        rng = random.Random(99)
        holders = [rng.randrange(fleet.members) for _ in range(200)]
        tokens = {
            index: mint_member_token(
                runtime, tenant_id=TENANT, member_id=member_id(index), key_id=key_id
            ).token
            for index in holders
        }
        over_http: dict[str, dict[str, float]] = {}
        with tether_server(runtime) as url, httpx.Client(base_url=url, timeout=60) as api:
            for seed, (name, operation) in enumerate(
                http_operations(api, fleet, issued.plaintext, tokens).items()
            ):
                summary = measure(operation, args.samples, seed)
                over_http[name] = summary.as_dict()
                log(f"HTTP {name}: p99 {summary.p99:.2f} ms")
        return {
            "engine": engine,
            "server": server_version(runtime),
            "members": fleet.members,
            "connections": fleet.connections,
            "audit_events": fleet.audit_events,
            "fill_seconds": {k: round(v, 1) for k, v in fill_seconds.items()},
            "database": size,
            "direct": direct,
            "http": over_http,
        }


def report(result: dict[str, Any]) -> str:
    rows = []
    worst_direct = worst_http = 0.0
    for name, figures in result["direct"].items():
        ms = figures["ms"]
        scans = sorted({t for plan in figures["plans"] for t in plan["full_scans"]})
        via_http = result["http"].get(name)
        rows.append(
            [
                name,
                ms["p50"],
                ms["p99"],
                via_http["p50"] if via_http else "-",
                via_http["p99"] if via_http else "-",
                ", ".join(scans) or "none",
            ]
        )
        if name not in NOT_JUDGED:
            worst_direct = max(worst_direct, ms["p99"])
        if via_http:
            worst_http = max(worst_http, via_http["p99"])
    base = result["http"]["GET /healthz (baseline)"]
    rows.append(["GET /healthz (baseline)", "-", "-", base["p50"], base["p99"], "-"])
    size = result["database"]
    verdict_direct = "met" if worst_direct <= TARGET_DIRECT_P99_MS else "MISSED"
    verdict_http = "met" if worst_http <= TARGET_HTTP_P99_MS else "MISSED"
    return (
        f"{result['engine']} ({result['server']}): {result['members']:,} members, "
        f"{result['connections']:,} connections, {result['audit_events']:,} audit events; "
        f"filled in {result['fill_seconds']['total']} s; database {size['total_mb']:,} MB\n"
        + table(["ms", "direct p50", "direct p99", "HTTP p50", "HTTP p99", "full scans"], rows)
        + f"\nworst p99 direct {worst_direct:.2f} ms (target ≤ {TARGET_DIRECT_P99_MS}: "
        f"{verdict_direct}); over HTTP {worst_http:.2f} ms (target ≤ {TARGET_HTTP_P99_MS}: "
        f"{verdict_http})"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args(argv)
    return run_per_engine(
        "scale",
        args,
        bench_engine,
        report,
        target_direct_p99_ms=TARGET_DIRECT_P99_MS,
        target_http_p99_ms=TARGET_HTTP_P99_MS,
    )
