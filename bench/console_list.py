"""The operator console's connection list with 1,000,000 connections.

    python -m bench console_list [--connections N] [--requests N] [--engine sqlite|postgresql]

N connections (default 1,000,000, three per member, one tenant, the mix of statuses and sync
errors of ``bench.metrics_scrape.fill``) are generated straight into the database. tether is
served over real HTTP on loopback in this process; a browser-like client signs in to the
console with the tenant's API key and asks for the first page (50 rows) of each filter, and a
page deep in the list (keyset ``after``), ``--requests`` times each.

Baseline: ``GET /healthz`` over the same client (the HTTP round trip alone). Target (issue
#18): console list p95 ≤ 200 ms with 1,000,000 connections, every filter.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from bench._support import (
    Stopwatch,
    Summary,
    bench_runtime,
    free_port,
    run_per_engine,
    server_version,
    table,
)
from bench.metrics_scrape import fill
from tether.bootstrap import create_app, ensure_directory
from tether.identity.api_keys import issue_api_key
from tether.testing.live_server import LiveServer

TARGET_P95_MS = 200.0
QUERIES: dict[str, dict[str, str]] = {
    "all": {},
    "status=EXPIRED": {"status": "EXPIRED"},
    "syncStatus=ERROR": {"syncStatus": "ERROR"},
    "syncError=SOURCE_UNAVAILABLE": {"syncError": "SOURCE_UNAVAILABLE"},
    "status=DELETED (2 %)": {"status": "DELETED"},
    "member=<one>": {"member": "m4242"},
    "deep page (after=900,000)": {"after": "900000"},
}


def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    with bench_runtime(engine, public_base_url=f"http://127.0.0.1:{port}") as runtime:
        ensure_directory(runtime)
        started = time.perf_counter()
        fill(runtime, args.connections)
        fill_seconds = time.perf_counter() - started
        key = issue_api_key(runtime, tenant_id="ten_bench").plaintext
        if engine == "postgresql":  # as autovacuum would have (committed: ANALYZE is undone
            with runtime.db.engine.begin() as conn:  # with its transaction otherwise)
                conn.exec_driver_sql("ANALYZE")
        live = LiveServer(create_app(runtime), port=port)
        live.start()
        try:
            with httpx.Client(base_url=live.url, timeout=60) as browser:
                signed = browser.post(
                    "/console/signin",
                    data={"api_key": key},
                    headers={"Sec-Fetch-Site": "same-origin"},
                )
                assert signed.status_code == 303, signed.text
                baseline = _timed(browser, "/healthz", {}, args.requests)
                figures = {
                    name: _timed(browser, "/console", params, args.requests)
                    for name, params in QUERIES.items()
                }
        finally:
            live.stop()
        return {
            "engine": engine,
            "server": server_version(runtime),
            "connections": args.connections,
            "fill_seconds": round(fill_seconds, 1),
            "baseline_healthz_ms": baseline.as_dict(),
            "console_ms": {name: s.as_dict() for name, s in figures.items()},
        }


def _timed(browser: httpx.Client, path: str, params: dict[str, str], times: int) -> Summary:
    browser.get(path, params=params)  # warm: templates compiled, pages cached, plans made
    samples = []
    for _ in range(times):
        with Stopwatch() as sw:
            answer = browser.get(path, params=params)
        assert answer.status_code == 200, (path, params, answer.status_code)
        samples.append(sw.ms)
    return Summary.of(samples)


def report(result: dict[str, Any]) -> str:
    base = result["baseline_healthz_ms"]
    rows = [["GET /healthz (baseline)", base["p50"], base["p95"], base["max"], 1.0]]
    worst = 0.0
    for name, s in result["console_ms"].items():
        rows.append([f"/console {name}", s["p50"], s["p95"], s["max"], s["p95"] / base["p95"]])
        worst = max(worst, s["p95"])
    verdict = "met" if worst <= TARGET_P95_MS else "MISSED"
    return (
        f"{result['engine']} ({result['server']}): {result['connections']:,} connections "
        f"(filled in {result['fill_seconds']} s)\n"
        + table(["ms", "p50", "p95", "max", "p95/baseline"], rows)
        + f"\nworst p95 {worst:.1f} ms; target ≤ {TARGET_P95_MS} ms: {verdict}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench console_list", description=__doc__)
    parser.add_argument("--connections", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args(argv)
    return run_per_engine("console_list", args, bench_engine, report, target_p95_ms=TARGET_P95_MS)
