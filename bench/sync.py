"""A full sync of 100,000 resources from the sandbox over loopback, against two baselines.

    python -m bench sync [--resources N] [--page-size N ...] [--rounds N] [--memory-resources N]
                         [--memory-engine sqlite|postgresql|all|none] [--gc-young N]
                         [--engine ...]

tether (with a sandbox whose ``clinic-volume`` patient has N Observations) is served from a
**separate process** (``bench._support.tether_server``) over the same database; this process
connects members through the real consent flow, then, per page size:

- **fetch-and-parse** baseline: the sync's searches (every default resource type, same
  ``_count``, same bearer token, same ``runtime.http_client()``) read page by page following
  ``next``, each page parsed with ``orjson.loads`` as the sync does, nothing stored;
- **sync**: ``run_sync(runtime, connection_pk=…, epoch=…, page_size=…)`` on a freshly connected
  member, writing as a worker does (``--writer auto``: from a store process on SQLite, started
  before the clock as a worker keeps one, and from database threads on PostgreSQL);
- **store-only** baseline: the pages fetched by the first baseline (kept as bytes, parsed and
  turned into rows outside the clock) upserted with ``upsert_resources``, one page per
  ``runtime.db.write()`` transaction, into another freshly connected member's connection.

The figure is sync seconds / max(fetch seconds, store seconds); target ≤ 1.3 (the sync
overlaps fetching and storing, so it should take about as long as the slower of the two).
With ``--rounds N`` every page size runs N times, on fresh members, and the median ratio is
reported too: one run's ratio moves by about 0.3 with this machine's speed.
Memory: ``run_sync`` of a 1,000,000-resource patient (``lab-volume``) in a fresh child process,
peak RSS sampled every 20 ms with psutil and ``VmHWM``, the store process's added; target ≤ 250 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import threading
import time
from typing import Any

import orjson
from sqlalchemy import func, select

from bench._support import (
    SERVER_ENV,
    BenchMember,
    available_engines,
    bench_python,
    bench_runtime,
    connect_member,
    cpu_seconds,
    free_port,
    machine,
    make_members,
    peak_rss_mb,
    quiet_logging,
    runtime_from_payload,
    server_version,
    settings_payload,
    table,
    tether_server,
    write_results,
)
from tether.bootstrap import ensure_directory
from tether.connections.sources import fhir_base_url
from tether.connections.tokens import access_token
from tether.domain import RESOURCE_TYPES
from tether.heap import GC_YOUNG_THRESHOLD, WORKER_YOUNG_THRESHOLD, freeze_start_up, tune_gc
from tether.runtime import Runtime
from tether.store.models import Connection, DataSource, FhirResource
from tether.sync.checks import prepare_page
from tether.sync.context import uses_store_process
from tether.sync.fenced_writes import upsert_resources
from tether.sync.run import run_sync
from tether.sync.store_process import StoreProcess

TARGET_RATIO = 1.3
TARGET_RSS_MB = 250.0
DEFAULT_RESOURCES = 100_000
DEFAULT_MEMORY_RESOURCES = 1_000_000
SYNC_SOURCE, SYNC_PATIENT = "sandbox-clinic", "clinic-volume"
MEMORY_SOURCE, MEMORY_PATIENT = "sandbox-lab", "lab-volume"


# ---------------------------------------------------------------------------- baselines
def _connection(runtime: Runtime, pk: int) -> tuple[Connection, DataSource]:
    with runtime.db.read() as session:
        conn = session.get(Connection, pk)
        assert conn is not None
        source = session.get(DataSource, conn.data_source_id)
        assert source is not None
        return conn, source


def fetch_baseline(
    runtime: Runtime, pk: int, page_size: int
) -> tuple[float, int, list[tuple[str, bytes]]]:
    """Read and parse every page the sync would read; ``(seconds, resources, pages)``."""
    conn, source = _connection(runtime, pk)
    token = access_token(runtime, conn)
    assert token is not None
    base = fhir_base_url(runtime, source)
    types = tuple((source.settings or {}).get("resource_types") or RESOURCE_TYPES)
    headers = {"Authorization": f"Bearer {token.token}", "Accept": "application/fhir+json"}
    pages: list[tuple[str, bytes]] = []
    resources = 0
    with runtime.http_client() as http:
        start = time.perf_counter()
        for rtype in types:
            params: dict[str, str] | None = {"_count": str(page_size)}
            assert params is not None
            if rtype == "Patient":
                params["_id"] = conn.patient_id or ""
            else:
                params["patient"] = conn.patient_id or ""
            url: str | None = f"{base}/{rtype}"
            while url:
                response = http.get(url, params=params, headers=headers)
                response.raise_for_status()
                bundle = orjson.loads(response.content)  # the sync's parser
                resources += len(bundle.get("entry") or [])
                pages.append((rtype, response.content))
                url = next(
                    (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"),
                    None,
                )
                params = None
        seconds = time.perf_counter() - start
    return seconds, resources, pages


def store_baseline(
    runtime: Runtime, member: BenchMember, pk: int, epoch: int, pages: list[tuple[str, bytes]]
) -> tuple[float, int]:
    """Upsert the fetched pages' resources, one page per transaction; only the writes timed."""
    conn, source = _connection(runtime, pk)
    seconds = 0.0
    written = 0
    for rtype, body in pages:
        page = prepare_page(body, rtype=rtype, patient_id=conn.patient_id or "", source=source.id)
        start = time.perf_counter()
        with runtime.db.write() as session:
            written += upsert_resources(
                session,
                member_id=member.member_id,
                connection_pk=pk,
                epoch=epoch,
                rows=page.rows,
                now=runtime.clock(),
            ).total()
        seconds += time.perf_counter() - start
    return seconds, written


def stored_count(runtime: Runtime, pk: int) -> int:
    with runtime.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(FhirResource)
                .where(FhirResource.connection_id == pk)
            )
            or 0
        )


# ---------------------------------------------------------------------------- memory child
def memory_child() -> None:
    """In a fresh process: run_sync one connection, sampling RSS; print JSON to stdout."""
    import psutil

    payload = json.loads(os.environ[SERVER_ENV])
    quiet_logging()
    runtime = runtime_from_payload(payload["settings"])
    tune_gc(payload["gc_young"])  # as in bench_engine
    freeze_start_up()
    proc = psutil.Process()
    peak = {"rss": proc.memory_info().rss}
    before = peak["rss"]
    done = threading.Event()

    store = store_for(runtime, payload["writer"])
    store_proc = psutil.Process(store.pid()) if store is not None else None  # type: ignore[arg-type]
    peak["store_rss"] = store_proc.memory_info().rss if store_proc else 0
    peak["sum"] = peak["rss"] + peak["store_rss"]

    def sample() -> None:  # this process and its store process (their sum at each sample)
        while not done.wait(0.02):
            rss = proc.memory_info().rss
            store_rss = store_proc.memory_info().rss if store_proc else 0
            peak["rss"] = max(peak["rss"], rss)
            peak["store_rss"] = max(peak["store_rss"], store_rss)
            peak["sum"] = max(peak["sum"], rss + store_rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = time.process_time()
    start = time.perf_counter()
    report = run_sync(
        runtime,
        connection_pk=payload["pk"],
        epoch=payload["epoch"],
        page_size=payload["page_size"],
        store=store or False,
    )
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    done.set()
    sampler.join()
    if store is not None:
        store.close()
    assert report is not None
    print(
        json.dumps(
            {
                "status": report.status.value,
                "written": report.written,
                "errors": report.errors,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "rss_before_mb": before / 2**20,
                "rss_peak_sampled_mb": peak["rss"] / 2**20,
                # the store process (a worker's on SQLite), and both together
                "store_rss_peak_mb": peak["store_rss"] / 2**20,
                "sum_rss_peak_mb": peak["sum"] / 2**20,
                # inherited from the parent across fork+exec on Linux: an upper bound only
                "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "vm_hwm_mb": peak_rss_mb(),  # this process's own high-water mark
            }
        )
    )


def store_for(runtime: Runtime, writer: str) -> StoreProcess | None:
    """The store process a worker would write from (``TETHER_SYNC_STORE_PROCESS``: ``auto`` is the
    worker's choice for the engine), started and ready: a worker keeps one for all its syncs,
    so its start is not part of any sync."""
    if writer == "threads" or (writer == "auto" and not uses_store_process(runtime)):
        return None
    if not runtime.db.sqlite:
        raise SystemExit("--writer process: the store process writes to SQLite only")
    store = StoreProcess(runtime.db.url)
    store.warm()
    return store


def memory_run(
    runtime: Runtime, pk: int, epoch: int, page_size: int, gc_young: int, writer: str
) -> dict[str, Any]:
    payload = {
        "writer": writer,
        "gc_young": gc_young,
        "settings": settings_payload(runtime.settings),
        "pk": pk,
        "epoch": epoch,
        "page_size": page_size,
    }
    process = bench_python(
        "import bench.sync as b; b.memory_child()", payload, stdout=subprocess.PIPE
    )
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"memory child failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["rate"] = result["written"] / result["seconds"]
    return result


# ---------------------------------------------------------------------------- one engine
def bench_engine(engine: str, args: argparse.Namespace, with_memory: bool) -> dict[str, Any]:
    port = free_port()
    volumes = {SYNC_SOURCE: args.resources}
    if with_memory:
        volumes[MEMORY_SOURCE] = args.memory_resources
    runs: list[dict[str, Any]] = []
    result: dict[str, Any] = {"engine": engine}
    with (
        bench_runtime(engine, public_base_url=f"http://127.0.0.1:{port}") as runtime,
        tether_server(runtime, volumes=volumes) as url,
    ):
        result["server"] = server_version(runtime)
        ensure_directory(runtime)
        plan = [(r, page) for r in range(args.rounds) for page in args.page_size]
        members = make_members(runtime, 2 * len(plan) + 1, prefix="sync")
        # The collector as `tether worker` sets it (tether.heap), for the sync and both
        # baselines alike: at CPython's defaults, collections walking this process's start-up
        # heap took 2.3 of the fetch baseline's 4.0 s and 2.6 of the sync's 7.2 s
        # (2026-12-04); at the young threshold of 10,000 (a process that also serves the API)
        # they still took 0.4-0.6 s of a 4.4 s sync (2026-12-05).
        tune_gc(args.gc_young)
        freeze_start_up()
        store = store_for(runtime, args.writer)
        result["writer"] = "process" if store else "threads"
        store_pid = store.pid() if store else None
        for index, (round_, page_size) in enumerate(plan):
            sync_member, store_member = members[2 * index], members[2 * index + 1]
            sync_pk, sync_epoch = connect_member(
                runtime, url, sync_member, SYNC_SOURCE, SYNC_PATIENT
            )
            store_pk, store_epoch = connect_member(
                runtime, url, store_member, SYNC_SOURCE, SYNC_PATIENT
            )
            fetch_s, fetched, pages = fetch_baseline(runtime, sync_pk, page_size)
            where = f"[{engine}] round {round_ + 1} page {page_size}"
            print(f"{where}: fetch {fetch_s:.1f} s", flush=True)
            cpu0 = time.process_time()
            store0 = cpu_seconds(store_pid) if store_pid else 0.0
            start = time.perf_counter()
            report = run_sync(
                runtime,
                connection_pk=sync_pk,
                epoch=sync_epoch,
                page_size=page_size,
                processes=args.processes,
                store=store or False,
            )
            sync_s = time.perf_counter() - start
            sync_cpu = time.process_time() - cpu0
            store_process_cpu = cpu_seconds(store_pid) - store0 if store_pid else 0.0
            assert report is not None
            print(f"{where}: sync {sync_s:.1f} s", flush=True)
            store_s, stored = store_baseline(runtime, store_member, store_pk, store_epoch, pages)
            print(f"{where}: store {store_s:.1f} s", flush=True)
            del pages
            runs.append(
                {
                    "round": round_,
                    "page_size": page_size,
                    "resources": report.written,
                    "sync_status": report.status.value,
                    "sync_errors": report.errors,
                    "stored_rows": stored_count(runtime, sync_pk),
                    "sync_seconds": sync_s,
                    "sync_cpu_seconds": sync_cpu,
                    "store_process_cpu_seconds": store_process_cpu,
                    "sync_rate": report.written / sync_s,
                    "fetch_seconds": fetch_s,
                    "fetch_rate": fetched / fetch_s,
                    "store_seconds": store_s,
                    "store_rate": stored / store_s,
                    "ratio": sync_s / max(fetch_s, store_s),
                }
            )
        if store is not None:
            store.close()
        if with_memory:
            member = members[-1]
            pk, epoch = connect_member(runtime, url, member, MEMORY_SOURCE, MEMORY_PATIENT)
            print(f"[{engine}] memory run: {args.memory_resources:,} resources …", flush=True)
            result["memory"] = memory_run(
                runtime, pk, epoch, args.memory_page_size, args.gc_young, args.writer
            )
            result["memory"]["page_size"] = args.memory_page_size
            result["memory"]["stored_rows"] = stored_count(runtime, pk)
    result["runs"] = runs
    result["rounds"] = args.rounds
    result["median_ratio"] = {
        str(page): statistics.median(r["ratio"] for r in runs if r["page_size"] == page)
        for page in args.page_size
    }
    return result


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            r["round"] + 1,
            r["page_size"],
            r["resources"],
            f"{r['sync_rate']:,.0f}",
            f"{r['fetch_rate']:,.0f}",
            f"{r['store_rate']:,.0f}",
            f"{r['sync_seconds']:.1f}",
            f"{r['fetch_seconds']:.1f}",
            f"{r['store_seconds']:.1f}",
            f"{r['ratio']:.2f}" + (" ok" if r["ratio"] <= TARGET_RATIO else " OVER"),
        ]
        for r in result["runs"]
    ]
    writer = result.get("writer", "threads")
    text = f"{result['engine']} ({result['server']}), pages written from {writer}\n" + table(
        [
            "round",
            "page",
            "resources",
            "sync/s",
            "fetch/s",
            "store/s",
            "sync s",
            "fetch s",
            "store s",
            f"ratio (≤ {TARGET_RATIO})",
        ],
        rows,
    )
    if result["rounds"] > 1:  # one run's ratio is noisy
        text += "\nmedian ratio: " + ", ".join(
            f"page {page} {ratio:.2f}" + (" ok" if ratio <= TARGET_RATIO else " OVER")
            for page, ratio in result["median_ratio"].items()
        )
    if "memory" in result:
        m = result["memory"]
        # ru_maxrss carries the parent's high-water mark across fork+exec: not used here
        own = max(m["rss_peak_sampled_mb"], m.get("vm_hwm_mb", 0.0))
        store = m.get("store_rss_peak_mb", 0.0)
        peak = own + store  # each one's peak: at least what the two held at once
        text += (
            f"\nmemory: {m['written']:,} resources in {m['seconds']:.1f} s "
            f"({m['rate']:,.0f}/s), RSS {m['rss_before_mb']:.0f} MB before, peak {own:.0f} MB"
            + (f" + {store:.0f} MB (store process)" if store else "")
            + f" ({'ok' if peak <= TARGET_RSS_MB else 'OVER'} ≤ {TARGET_RSS_MB:.0f} MB)"
        )
    return text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sync", description=__doc__)
    parser.add_argument("--resources", type=int, default=DEFAULT_RESOURCES)
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="page processes of the sync (TETHER_SYNC_PROCESSES; 0: prepared in threads)",
    )
    parser.add_argument(
        "--page-size", type=int, action="append", help="repeatable; default 200, 500, 1000"
    )
    parser.add_argument("--memory-resources", type=int, default=DEFAULT_MEMORY_RESOURCES)
    parser.add_argument("--memory-page-size", type=int, default=500)
    parser.add_argument(
        "--memory-engine",
        choices=["sqlite", "postgresql", "all", "none"],
        default="sqlite",
        help="where to run the 1,000,000-resource memory run (default sqlite)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every page size this many times (fresh members each) and report the median "
        "ratio too: one run's ratio moves by 0.3 with the machine",
    )
    parser.add_argument(
        "--gc-young",
        type=int,
        default=WORKER_YOUNG_THRESHOLD,
        help="raise the collector's young threshold to this (tether.heap.tune_gc, which "
        f"never lowers it: 700 or less keeps CPython's 700); default tether worker's "
        f"{WORKER_YOUNG_THRESHOLD:,}, {GC_YOUNG_THRESHOLD:,} is tether serve's",
    )
    parser.add_argument(
        "--writer",
        choices=["auto", "process", "threads"],
        default="auto",
        help="where the sync writes its pages: auto is the worker's (TETHER_SYNC_STORE_PROCESS: "
        "the store process on SQLite, database threads on PostgreSQL); process is SQLite's only",
    )
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args(argv)
    args.page_size = args.page_size or [200, 500, 1000]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    engines = args.engine or available_engines()
    missing = set(engines) - set(available_engines())
    if missing:
        parser.error(
            f"not available: {', '.join(sorted(missing))} (run under scripts/with-services)"
        )
    quiet_logging()
    results = []
    for engine in engines:
        with_memory = args.memory_engine in (engine, "all")
        start = time.perf_counter()
        result = bench_engine(engine, args, with_memory)
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        print(report(result), f"\n[{engine}] {result['wall_seconds']} s wall\n", flush=True)
        results.append(result)
    written = write_results(
        "sync",
        {
            "benchmark": "sync",
            "target_ratio": TARGET_RATIO,
            "target_rss_mb": TARGET_RSS_MB,
            "options": vars(args) | {"engine": engines},
            "machine": machine(),
            "results": results,
        },
    )
    print(f"results: {written}")
    return 0
