"""Deleting a connection that holds 1,000,000 resources, and what other members see meanwhile.

    python -m bench delete [--rows N] [--batch N] [--members N] [--rate N] [--idle-seconds N]
                           [--engine sqlite|postgresql]

tether (with its sandbox) is served from a **separate process** over the same database
(``bench._support.tether_server``). A target member is connected through the real consent
flow and its connection filled with N Observation rows by one ``INSERT … SELECT`` per 200,000
rows (the sandbox's volume Observation JSON, ~900 bytes each). Several other members, each
with a connection, are polled by a **third process**: ``GET /v1/connections`` round-robin over
their member tokens at a fixed rate (closed loop, one request at a time) for the whole run.

1. idle: the poller alone for ``--idle-seconds``;
2. ``deleteConnection`` (``delete_connection``) then ``run_delete(runtime, connection_pk=…, epoch=…,
   batch=...)``, timed, with the poller running;
3. the connection refilled with the same N rows, a pause, then one raw
   ``DELETE FROM fhir_resources WHERE connection_id = :pk`` in one transaction (the baseline),
   timed, with the poller running.

Figures: run_delete seconds, raw DELETE seconds and their ratio; the poller's p50/p95/p99 while
idle, during run_delete and during the raw DELETE. Target: p99 during / p99 idle ≤ 2.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from bench._support import (
    SERVER_ENV,
    Summary,
    available_engines,
    bench_python,
    bench_runtime,
    connect_member,
    free_port,
    machine,
    make_members,
    quiet_logging,
    server_version,
    table,
    tether_server,
    write_results,
)
from tether.bootstrap import ensure_directory
from tether.connections.deletion import DELETE_BATCH, delete_connection, run_delete
from tether.domain import SyncStatus
from tether.identity.principals import MemberPrincipal
from tether.runtime import Runtime
from tether.sandbox.data.records import VolumeRecord
from tether.store.models import Connection, FhirResource

TARGET_P99_RATIO = 2.0
DEFAULT_ROWS = 1_000_000
FILL_CHUNK = 200_000
SOURCE = "sandbox-clinic"


# ---------------------------------------------------------------------------- fill
def _template() -> str:
    """The sandbox's volume Observation with ``@RID@`` where its id goes."""
    record = VolumeRecord("bench-volume", {"resourceType": "Patient"}, 1, 1_704_067_200.0)
    rid, body = record._observation(0)
    return body.decode().replace(rid, "@RID@")


def fill(runtime: Runtime, member_id: str, pk: int, epoch: int, rows: int) -> float:
    """Insert ``rows`` Observations for connection ``pk``; returns seconds."""
    if runtime.db.sqlite:
        statement = text(
            "INSERT INTO fhir_resources (member_id, connection_id, resource_type, resource_id,"
            " last_updated, grant_epoch, data)"
            " WITH RECURSIVE seq(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM seq WHERE i < :hi)"
            " SELECT :member, :pk, 'Observation', 'obs-' || i, '2024-01-01T00:00:00.000Z',"
            " :epoch, replace(:tpl, '@RID@', 'obs-' || i) FROM seq"
        )
    else:
        statement = text(
            "INSERT INTO fhir_resources (member_id, connection_id, resource_type, resource_id,"
            " last_updated, grant_epoch, data)"
            " SELECT :member, :pk, 'Observation', 'obs-' || i, '2024-01-01T00:00:00.000Z',"
            " :epoch, replace(:tpl, '@RID@', 'obs-' || i)"
            " FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i"
        )
    template = _template()
    start = time.perf_counter()
    for lo in range(0, rows, FILL_CHUNK):
        hi = min(rows, lo + FILL_CHUNK) - 1
        with runtime.db.write() as session:
            session.execute(
                statement,
                {
                    "lo": lo,
                    "hi": hi,
                    "member": member_id,
                    "pk": pk,
                    "epoch": epoch,
                    "tpl": template,
                },
            )
    seconds = time.perf_counter() - start
    if not runtime.db.sqlite:
        with runtime.db.write() as session:  # what autovacuum would do shortly; not timed
            session.execute(text("ANALYZE fhir_resources"))
    return seconds


def count_rows(runtime: Runtime, pk: int) -> int:
    with runtime.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(FhirResource)
                .where(FhirResource.connection_id == pk)
            )
            or 0
        )


# ---------------------------------------------------------------------------- the poller
def load_child() -> None:
    """In its own process: GET /v1/connections round-robin until the stop file appears."""
    import httpx

    payload = json.loads(os.environ[SERVER_ENV])
    tokens: list[str] = payload["tokens"]
    interval = 1.0 / payload["rate"]
    stop = Path(payload["stop"])
    samples: list[tuple[float, float, int]] = []
    deadline = time.monotonic() + payload["max_seconds"]
    with httpx.Client(base_url=payload["url"], timeout=30) as http:
        index = 0
        next_at = time.monotonic()
        while time.monotonic() < deadline and not stop.exists():
            token = tokens[index % len(tokens)]
            index += 1
            t0 = time.monotonic()
            response = http.get("/v1/connections", headers={"Authorization": f"Bearer {token}"})
            samples.append((t0, (time.monotonic() - t0) * 1000, response.status_code))
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.monotonic()
    Path(payload["out"]).write_text(json.dumps(samples))


def window(samples: list[list[float]], start: float, end: float) -> dict[str, Any]:
    inside = [s for s in samples if start <= s[0] < end]
    errors = sum(1 for s in inside if s[2] != 200)
    summary = Summary.of([s[1] for s in inside]).as_dict() if inside else {}
    return summary | {"errors": errors, "seconds": end - start}


# ---------------------------------------------------------------------------- one engine
def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    result: dict[str, Any] = {"engine": engine}
    tmp = Path(tempfile.mkdtemp(prefix="tether-bench-delete-"))
    with (
        bench_runtime(engine, public_base_url=f"http://127.0.0.1:{port}") as runtime,
        tether_server(runtime) as url,
    ):
        result["server"] = server_version(runtime)
        ensure_directory(runtime)
        target, *others = make_members(runtime, args.members + 1, prefix="delete")
        pk, epoch = connect_member(runtime, url, target, SOURCE, "clinic-2")
        for member in others:
            connect_member(runtime, url, member, SOURCE, "clinic-1")
        result["fill_seconds"] = fill(runtime, target.member_id, pk, epoch, args.rows)
        assert count_rows(runtime, pk) == args.rows
        print(f"[{engine}] filled {args.rows:,} rows in {result['fill_seconds']:.1f} s", flush=True)

        stop = tmp / "stop"
        out = tmp / "samples.json"
        poller = bench_python(
            "import bench.delete as b; b.load_child()",
            {
                "url": url,
                "tokens": [m.token for m in others],
                "rate": args.rate,
                "stop": str(stop),
                "out": str(out),
                "max_seconds": 1800,
            },
        )
        try:
            time.sleep(2)  # the poller's start-up and first connections
            idle = (time.monotonic(), 0.0)
            time.sleep(args.idle_seconds)
            idle = (idle[0], time.monotonic())

            batches: list[float] = []
            last = [time.perf_counter()]

            def on_batch(_count: int) -> None:
                now = time.perf_counter()
                batches.append((now - last[0]) * 1000)
                last[0] = now

            start_m = time.monotonic()
            start = time.perf_counter()
            delete_connection(
                runtime,
                member=MemberPrincipal(target.tenant_id, target.member_id),
                connection_id=SOURCE,
            )
            accepted = time.perf_counter() - start
            with runtime.db.read() as session:  # deleteConnection bumped the grant epoch
                conn = session.get(Connection, pk)
                assert conn is not None and conn.sync_status == SyncStatus.DELETING
                delete_epoch = conn.grant_epoch
            last[0] = time.perf_counter()
            deleted = run_delete(
                runtime, connection_pk=pk, epoch=delete_epoch, batch=args.batch, on_batch=on_batch
            )
            delete_s = time.perf_counter() - start - accepted
            during = (start_m, time.monotonic())
            assert deleted == args.rows, deleted
            assert count_rows(runtime, pk) == 0
            print(f"[{engine}] run_delete {delete_s:.1f} s", flush=True)

            refill_s = fill(runtime, target.member_id, pk, epoch, args.rows)
            time.sleep(3)
            start_m = time.monotonic()
            start = time.perf_counter()
            with runtime.db.write() as session:
                raw = session.execute(
                    text("DELETE FROM fhir_resources WHERE connection_id = :pk"), {"pk": pk}
                ).rowcount
            raw_s = time.perf_counter() - start
            during_raw = (start_m, time.monotonic())
            assert raw == args.rows, raw
            print(f"[{engine}] raw DELETE {raw_s:.1f} s", flush=True)
            time.sleep(2)
        finally:
            stop.touch()
            poller.wait(60)
        samples = json.loads(out.read_text())
    result |= {
        "rows": args.rows,
        "batch": args.batch,
        "accept_seconds": accepted,
        "run_delete_seconds": delete_s,
        "run_delete_rate": args.rows / delete_s,
        "batch_ms": Summary.of(batches).as_dict() if batches else {},
        "refill_seconds": refill_s,
        "raw_delete_seconds": raw_s,
        "ratio": delete_s / raw_s,
        "latency": {
            "idle": window(samples, *idle),
            "run_delete": window(samples, *during),
            "raw_delete": window(samples, *during_raw),
        },
    }
    lat = result["latency"]
    result["p99_ratio"] = lat["run_delete"]["p99"] / lat["idle"]["p99"]
    result["p99_ratio_raw"] = lat["raw_delete"]["p99"] / lat["idle"]["p99"]
    return result


def report(result: dict[str, Any]) -> str:
    lat = result["latency"]
    rows = [
        [
            name,
            w["n"],
            w["errors"],
            w["p50"],
            w["p95"],
            w["p99"],
            w["max"],
            w["p99"] / lat["idle"]["p99"],
        ]
        for name, w in lat.items()
    ]
    ok = "ok" if result["p99_ratio"] <= TARGET_P99_RATIO else "OVER"
    return (
        f"{result['engine']} ({result['server']}): {result['rows']:,} rows, "
        f"run_delete(batch={result['batch']}) {result['run_delete_seconds']:.1f} s "
        f"({result['run_delete_rate']:,.0f} rows/s), "
        f"raw DELETE {result['raw_delete_seconds']:.1f} s, ratio {result['ratio']:.1f}x; "
        f"batch p50 {result['batch_ms'].get('p50', 0):.1f} ms "
        f"p99 {result['batch_ms'].get('p99', 0):.1f} ms\n"
        + table(
            ["GET /v1/connections", "n", "errors", "p50", "p95", "p99", "max", "p99/idle"], rows
        )
        + f"\np99 during run_delete / idle: {result['p99_ratio']:.2f} ({ok} ≤ {TARGET_P99_RATIO})"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench delete", description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--batch", type=int, default=DELETE_BATCH)
    parser.add_argument("--members", type=int, default=8, help="other members polled")
    parser.add_argument("--rate", type=float, default=20.0, help="polls per second")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args(argv)
    engines = args.engine or available_engines()
    missing = set(engines) - set(available_engines())
    if missing:
        parser.error(
            f"not available: {', '.join(sorted(missing))} (run under scripts/with-services)"
        )
    quiet_logging()
    results = []
    for engine in engines:
        start = time.perf_counter()
        result = bench_engine(engine, args)
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        print(report(result), f"\n[{engine}] {result['wall_seconds']} s wall\n", flush=True)
        results.append(result)
    written = write_results(
        "delete",
        {
            "benchmark": "delete",
            "target_p99_ratio": TARGET_P99_RATIO,
            "options": vars(args) | {"engine": engines},
            "machine": machine(),
            "results": results,
        },
    )
    print(f"results: {written}")
    return 0
