"""The FHIR data side: a Bulk Data export against a raw SELECT, and search latency per parameter.

    python -m bench fhir_data [--rows N] [--search-rows N] [--engine sqlite|postgresql]

**Export.** One member's connection filled with N Observations (default 1,000,000; the
sandbox's volume Observation JSON, ~900 bytes, by ``bench.delete.fill``). In a fresh child
process each:

- **baseline**: ``SELECT data FROM fhir_resources WHERE member_id = … AND resource_type =
  'Observation' ORDER BY id``, streamed (server-side cursor, 1,000 rows a fetch) into a file,
  one line per row; run twice and the faster taken (the first warms the page cache);
- **export**: ``tether.data.exports.run_export`` of the same member's Observations (kick-off
  through the service, the job run in the child).

Reported: seconds and the child's peak RSS (``ru_maxrss``); targets export / baseline ≤ 1.5
and RSS ≤ 250 MB.

**Search.** Another member with M Observations (default 100,000) stored through the sync's own
writer (``upsert_resources``: rows, stamps and search values as a sync stores them), drawn
from 40 LOINC codes, 3 categories and five years of dates. Each search parameter
is run 40 times with varied values through ``tether.data.fhir.search_resources`` (``_count=50``,
first page); p50/p95 per parameter, target p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from bench._support import (
    SERVER_ENV,
    Summary,
    bench_python,
    bench_runtime,
    make_members,
    run_per_engine,
    runtime_from_payload,
    server_version,
    settings_payload,
    table,
)
from bench.delete import fill
from tether.bootstrap import ensure_directory
from tether.data.fhir import Scope, search_resources
from tether.data.search import parse_search
from tether.domain import Status, SyncStatus
from tether.runtime import Runtime
from tether.store.models import Connection
from tether.sync.checks import stamped
from tether.sync.fenced_writes import upsert_resources

TARGET_RATIO = 1.5
TARGET_RSS_MB = 250.0
TARGET_P95_MS = 50.0
SOURCE = "sandbox-clinic"
CODES = [f"{1000 + i}-{i % 10}" for i in range(40)]
CATEGORIES = ["vital-signs", "laboratory", "social-history"]
STATUSES = ["final", "amended", "preliminary"]


def _connection(runtime: Runtime, tenant_id: str, member_id: str, patient: str) -> int:
    with runtime.db.write() as session:
        conn = Connection(
            member_id=member_id,
            tenant_id=tenant_id,
            data_source_id=SOURCE,
            status=Status.CONNECTED.value,
            sync_status=SyncStatus.RETRIEVED.value,
            patient_id=patient,
            grant_epoch=1,
        )
        session.add(conn)
        session.flush()
        return conn.id


# ---------------------------------------------------------------------------- children
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child() -> None:
    """In a fresh process: the baseline or the export; prints one JSON line."""
    payload = json.loads(os.environ[SERVER_ENV])
    runtime = runtime_from_payload(payload["settings"])
    start = time.perf_counter()
    if payload["what"] == "baseline":
        rows = 0
        with runtime.db.engine.connect() as conn, Path(payload["out"]).open("wb") as out:
            result = conn.execution_options(stream_results=True, yield_per=1000).execute(
                text(
                    "SELECT data FROM fhir_resources WHERE member_id = :m"
                    " AND resource_type = 'Observation' ORDER BY id"
                ),
                {"m": payload["member_id"]},
            )
            for (data,) in result:
                out.write(data.encode() + b"\n")
                rows += 1
    else:
        from tether.data.exports import run_export

        assert run_export(runtime, payload["export_id"]) == "completed"
        rows = -1
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mb": _rss_mb(), "rows": rows}), flush=True)


def _run_child(runtime: Runtime, **payload: Any) -> dict[str, Any]:
    proc = bench_python(
        "import bench.fhir_data as b; b.child()",
        {"settings": settings_payload(runtime.settings), **payload},
        stdout=subprocess.PIPE,
    )
    out, _ = proc.communicate(timeout=3600)
    assert proc.returncode == 0, out
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------- export
def bench_export(runtime: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    from tether.data import exports

    (member,) = make_members(runtime, 1, prefix="export")
    pk = _connection(runtime, member.tenant_id, member.member_id, "volume")
    filled = fill(runtime, member.member_id, pk, 1, args.rows)
    print(f"  filled {args.rows:,} rows in {filled:.1f} s", flush=True)
    runtime.settings.data_dir.mkdir(parents=True, exist_ok=True)
    out = runtime.settings.data_dir / "baseline.ndjson"
    # Twice, the faster counted: the first read also warms the page cache the export then uses.
    runs = [
        _run_child(runtime, what="baseline", member_id=member.member_id, out=str(out))
        for _ in range(2)
    ]
    baseline = min(runs, key=lambda run: run["seconds"])
    assert baseline["rows"] == args.rows
    baseline_bytes = out.stat().st_size
    out.unlink()
    scope = Scope(member.tenant_id, member.member_id)
    wanted = exports.parse_kickoff([("_type", "Observation")], strict=True)
    export_id = exports.kick_off(runtime, scope, wanted, "bench")
    export = _run_child(runtime, what="export", export_id=export_id)
    view = exports.export_status(runtime, scope, export_id)
    assert sum(item["count"] for item in view.output) == args.rows
    export_bytes = sum(
        (runtime.settings.data_dir / "exports" / item["key"]).stat().st_size for item in view.output
    )
    exports.cancel(runtime, scope, export_id)
    return {
        "rows": args.rows,
        "baseline_seconds": round(baseline["seconds"], 2),
        "baseline_rss_mb": round(baseline["rss_mb"], 1),
        "export_seconds": round(export["seconds"], 2),
        "export_rss_mb": round(export["rss_mb"], 1),
        "ratio": round(export["seconds"] / baseline["seconds"], 2),
        "bytes_equal": export_bytes == baseline_bytes,
        "files": len(view.output),
    }


# ---------------------------------------------------------------------------- search
def _observation(i: int, rng: random.Random, start: datetime) -> dict[str, Any]:
    when = start + timedelta(minutes=rng.randrange(5 * 365 * 24 * 60))
    return {
        "id": f"s-{i}",
        "status": rng.choice(STATUSES),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": rng.choice(CATEGORIES),
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": rng.choice(CODES)}]},
        "subject": {"reference": "Patient/search"},
        "effectiveDateTime": when.isoformat().replace("+00:00", "Z"),
        "valueQuantity": {"value": rng.randrange(40, 200), "unit": "/min"},
    }


def bench_search(runtime: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    (member,) = make_members(runtime, 1, prefix="search")
    pk = _connection(runtime, member.tenant_id, member.member_id, "search")
    rng = random.Random(20261204)
    start_date = datetime(2021, 1, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    batch = 2000
    for lo in range(0, args.search_rows, batch):
        rows = [
            stamped("Observation", _observation(i, rng, start_date), source=SOURCE)
            for i in range(lo, min(args.search_rows, lo + batch))
        ]
        with runtime.db.write() as session:
            upsert_resources(
                session,
                member_id=member.member_id,
                connection_pk=pk,
                epoch=1,
                rows=rows,
                now=datetime.now(UTC),
            )
    stored_s = time.perf_counter() - t0
    if not runtime.db.sqlite:
        with runtime.db.write() as session:
            session.execute(text("ANALYZE"))
    print(f"  stored {args.search_rows:,} Observations in {stored_s:.1f} s", flush=True)
    scope = Scope(member.tenant_id, member.member_id)
    with runtime.db.read() as session:
        stamps = sorted(
            session.scalars(
                select(text("changed_at"))
                .select_from(text("fhir_resources"))
                .where(text("member_id = :m")),
                {"m": member.member_id},
            ).all()
        )
    middle = stamps[len(stamps) // 2]

    def values(name: str) -> list[list[tuple[str, str]]]:
        r = random.Random(name)
        day = lambda: (start_date + timedelta(days=r.randrange(5 * 365))).strftime("%Y-%m-%d")  # noqa: E731
        match name:
            case "none":
                return [[] for _ in range(40)]
            case "_id":
                return [[("_id", f"s-{r.randrange(args.search_rows)}")] for _ in range(40)]
            case "code":
                return [[("code", f"http://loinc.org|{r.choice(CODES)}")] for _ in range(40)]
            case "category":
                return [[("category", r.choice(CATEGORIES))] for _ in range(40)]
            case "date":
                return [[("date", f"ge{day()}")] for _ in range(20)] + [
                    [("date", day())] for _ in range(20)
                ]
            case "_lastUpdated":
                return [[("_lastUpdated", f"gt{middle}Z")] for _ in range(40)]
            case "patient":
                return [[("patient", "search")] for _ in range(40)]
            case "code+date":
                return [[("code", r.choice(CODES)), ("date", f"ge{day()}")] for _ in range(40)]
            case _:  # _summary=count of one code
                return [[("code", r.choice(CODES)), ("_summary", "count")] for _ in range(40)]

    results: dict[str, Any] = {}
    for name in (
        "none",
        "_id",
        "code",
        "category",
        "date",
        "_lastUpdated",
        "patient",
        "code+date",
        "count(code)",
    ):
        samples = []
        matched = 0
        for pairs in values(name):
            search = parse_search("Observation", [*pairs, ("_count", "50")], strict=True)
            t = time.perf_counter()
            page = search_resources(runtime, scope, search)
            samples.append((time.perf_counter() - t) * 1000)
            matched += len(page.resources) or (page.total or 0)
        summary = Summary.of(samples).as_dict()
        results[name] = {
            "p50": summary["p50"],
            "p95": summary["p95"],
            "matched": matched,
            "plan": _plan(runtime, scope, values(name)[0]),
        }
    return {"rows": args.search_rows, "store_seconds": round(stored_s, 1), "params": results}


def _plan(runtime: Runtime, scope: Scope, pairs: list[tuple[str, str]]) -> list[str]:
    """How the database runs the first page of this search (EXPLAIN / EXPLAIN QUERY PLAN)."""
    from tether.data.fhir import _filtered, storage_order

    search = parse_search("Observation", [*pairs, ("_count", "50")], strict=True)
    with runtime.db.read() as session:
        query = _filtered(session, scope, search).order_by(*storage_order(scope)).limit(51)
        dialect = session.get_bind().dialect
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        # SQLite's "no limit" before an OFFSET stays a parameter even with literal binds.
        sql = sql.replace("LIMIT ? OFFSET", "LIMIT -1 OFFSET")
        explain = "EXPLAIN QUERY PLAN " if runtime.db.sqlite else "EXPLAIN "
        rows = session.connection().exec_driver_sql(explain + sql).all()
    return [" ".join(str(c) for c in row[-1:]) for row in rows]


# ---------------------------------------------------------------------------- main
def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    with bench_runtime(engine) as runtime:
        ensure_directory(runtime)
        result: dict[str, Any] = {"engine": engine, "server": server_version(runtime)}
        if args.rows:
            print(f"[{engine}] export", flush=True)
            result["export"] = bench_export(runtime, args)
        if args.search_rows:
            print(f"[{engine}] search", flush=True)
            result["search"] = bench_search(runtime, args)
    return result


def report(result: dict[str, Any]) -> str:
    lines = [f"== {result['engine']} ({result['server']})"]
    if "export" in result:
        e = result["export"]
        lines.append(
            table(
                ["rows", "baseline s", "export s", "ratio", "baseline RSS MB", "export RSS MB"],
                [
                    [
                        e["rows"],
                        e["baseline_seconds"],
                        e["export_seconds"],
                        e["ratio"],
                        e["baseline_rss_mb"],
                        e["export_rss_mb"],
                    ]
                ],
            )
        )
    if "search" in result:
        s = result["search"]
        lines.append(
            table(
                ["parameter", "p50 ms", "p95 ms", "matched"],
                [[k, v["p50"], v["p95"], v["matched"]] for k, v in s["params"].items()],
            )
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fhir_data", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="exported rows (0: skip)")
    parser.add_argument("--search-rows", type=int, default=100_000, help="0: skip")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args(argv)
    return run_per_engine(
        "fhir_data",
        args,
        bench_engine,
        report,
        target_ratio=TARGET_RATIO,
        target_rss_mb=TARGET_RSS_MB,
        target_p95_ms=TARGET_P95_MS,
    )
