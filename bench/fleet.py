"""A fleet's syncs on one worker process against a slow source.

    python -m bench fleet [--members N] [--latency-ms MS] [--concurrency N]
                          [--max-concurrent-requests N] [--max-requests-per-minute N]
                          [--worker-env TETHER_X=VALUE] [--worker-session shared|own]
                          [--engine sqlite|postgresql]

A tether server (the API, no worker) runs in one process, one ``tether worker`` in another,
both on the same database and SQLite queue, and the sandbox (``tether sandbox``) in a third.
Every FHIR request to the sandbox clinic waits ``--latency-ms`` (default 200, as real health
systems answer in 100 to 500 ms).

1. The ideal: one member connects through the real consent flow and the worker syncs that one
   connection alone: its sync's duration (``sync_runs``).
2. With the worker stopped, ``--members`` members (default 1,000) connect through the real
   consent flow (their syncs wait on the queue); twenty more members, each connected to the
   sandbox lab, time ``GET /v1/connections`` while nothing runs (idle).
3. The worker starts: from the first sync's start to the last one's end (``sync_runs``), the
   syncs per minute, against the ideal; the worker's peak RSS (VmHWM, its children's added:
   the store process on SQLite); the most concurrent
   requests and requests within any minute the source saw (the sandbox's counters) against the
   source's budget; ``GET /v1/connections`` for the other members during the run, p99 against
   idle.

Targets (issue #13): ≥ 1,000 syncs/min per worker process at 200 ms; peak RSS ≤ 400 MB; the
budget never exceeded; p99 during / idle ≤ 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench._support import (
    SANDBOX_ADMIN_SECRET,
    BenchMember,
    Summary,
    bench_runtime,
    connect_member,
    cpu_seconds,
    free_port,
    make_members,
    peak_rss_mb,
    run_per_engine,
    server_version,
    table,
    tether_server,
)
from tether.bootstrap import ensure_directory
from tether.runtime import Runtime
from tether.store.models import Connection, DataSource, SyncRun

CLINIC = "sandbox-clinic"
LAB = "sandbox-lab"
TARGET_SYNCS_PER_MIN = 1000.0
TARGET_RSS_MB = 400.0
TARGET_P99_RATIO = 2.0
OTHERS = 20
ROOT = Path(__file__).resolve().parent.parent


def worker_env(
    runtime: Runtime, concurrency: int, processes: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    settings = runtime.settings
    assert settings.secret_key is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        TETHER_DATABASE_URL=settings.resolved_database_url,
        TETHER_QUEUE_URL=settings.resolved_queue_url,
        TETHER_SECRET_KEY=settings.secret_key.get_secret_value(),
        TETHER_VAULT_KEYS=",".join(k.get_secret_value() for k in settings.vault_keys),
        TETHER_DATA_DIR=str(settings.data_dir),
        TETHER_PUBLIC_BASE_URL=settings.public_base_url,
        TETHER_SYNC_CONCURRENCY=str(concurrency),
        TETHER_SYNC_PROCESSES=str(processes),
        TETHER_LOG_LEVEL="WARNING",
    )
    env.update(extra or {})  # --worker-env: an A/B of any of the worker's settings
    return env


class Worker:
    """A ``tether worker`` process; its peak RSS is read from /proc before it is stopped."""

    def __init__(
        self,
        runtime: Runtime,
        concurrency: int,
        processes: int,
        extra: dict[str, str] | None = None,
        own_session: bool = False,
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "worker", "--sweep-interval", "3600"],
            cwd=ROOT,
            env=worker_env(runtime, concurrency, processes, extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=own_session,  # as a service manager or container starts it
        )  # fmt: skip
        self.peak_rss_mb = 0.0  # the worker and its children (the store process), together
        self.children_peak_rss_mb = 0.0
        self.cpu_seconds = 0.0
        self.children_cpu_seconds = 0.0
        self.autogroup = ""  # the scheduling group it ran in, and that group's niceness

    def stop(self) -> None:
        import psutil

        try:
            children = [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
            for pid in children:
                self.children_peak_rss_mb += peak_rss_mb(pid)
                self.children_cpu_seconds += cpu_seconds(pid)
            # Each one's own peak, added: at least what they held at once.
            self.peak_rss_mb = peak_rss_mb(self.proc.pid) + self.children_peak_rss_mb
            self.cpu_seconds = cpu_seconds(self.proc.pid) + self.children_cpu_seconds
            self.autogroup = Path(f"/proc/{self.proc.pid}/autogroup").read_text().strip()
        except (OSError, psutil.Error):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent not idle since boot (``/proc/stat``)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def postgres_cpu_seconds() -> float:
    """CPU seconds of this machine's PostgreSQL: every server process, and the children
    (backends) that have already exited."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "postgres":
            continue
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def server_pid() -> int:
    """The tether server's process: this process's child that is not a worker."""
    import psutil

    children = psutil.Process().children()
    return next(c.pid for c in children if "server_main" in " ".join(c.cmdline()))


class SandboxProcess:
    """``tether sandbox`` in a process of its own, so that serving the fleet's FHIR requests
    does not share an event loop (or a core's worth of CPU) with the tether API being timed."""

    def __init__(self, runtime: Runtime) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "sandbox", "--port", str(self.port),
             "--redirect-uri", runtime.settings.callback_url,
             "--admin-secret", SANDBOX_ADMIN_SECRET],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/sandbox/{CLINIC}/fhir/metadata").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.1)
        with runtime.db.write() as session:  # the directory's sandbox sources point at it
            for source in (CLINIC, LAB):
                row = session.get(DataSource, source)
                assert row is not None
                row.fhir_base_url = f"{self.url}/sandbox/{source}/fhir"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def sandbox_admin(base: str, method: str, path: str, body: Any = None) -> Any:
    answer = httpx.request(
        method,
        f"{base}/sandbox/{CLINIC}/admin/{path}",
        json=body,
        headers={"Authorization": f"Bearer {SANDBOX_ADMIN_SECRET}"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json() if answer.content else None


def set_budget(runtime: Runtime, concurrent: int, per_minute: int) -> None:
    with runtime.db.write() as session:
        row = session.get(DataSource, CLINIC)
        assert row is not None
        row.settings = {
            **(row.settings or {}),
            "max_concurrent_requests": concurrent,
            "max_requests_per_minute": per_minute,
        }


def retrieved(runtime: Runtime, pks: list[int]) -> int:
    with runtime.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Connection)
                .where(Connection.id.in_(pks), Connection.sync_status == "RETRIEVED")
            )
            or 0
        )


def wait_all(runtime: Runtime, pks: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    chunks = [pks[i : i + 500] for i in range(0, len(pks), 500)]
    while sum(retrieved(runtime, c) for c in chunks) < len(pks):
        if time.monotonic() > deadline:
            raise TimeoutError("the fleet did not finish")
        time.sleep(0.5)


def runs_span(runtime: Runtime, pks: list[int]) -> tuple[float, int]:
    """Seconds from the first run's start to the last run's end, and how many runs."""
    with runtime.db.read() as session:
        first, last, n = session.execute(
            select(func.min(SyncRun.started_at), func.max(SyncRun.finished_at), func.count()).where(
                SyncRun.connection_id.in_(pks)
            )
        ).one()
    return (last - first).total_seconds(), int(n)


class Reader:
    """``GET /v1/connections`` for other members, one after another, until stopped."""

    def __init__(self, base: str, members: list[BenchMember]) -> None:
        self.base, self.members = base, members
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            i = 0
            while not self._stop.is_set():
                member = self.members[i % len(self.members)]
                started = time.perf_counter()
                answer = http.get("/v1/connections", headers=member.headers)
                self.samples.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text
                i += 1
                time.sleep(0.02)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    with bench_runtime(engine, public_base_url=f"http://127.0.0.1:{port}") as runtime:
        ensure_directory(runtime)
        set_budget(runtime, args.max_concurrent_requests, args.max_requests_per_minute)
        sandbox = SandboxProcess(runtime)
        try:
            with tether_server(runtime) as base:
                sandbox_admin(sandbox.url, "PATCH", "knobs", {"latency_ms": args.latency_ms})
                members = make_members(runtime, args.members + OTHERS + 1, prefix="fleet")
                solo, others, fleet = members[0], members[1 : 1 + OTHERS], members[1 + OTHERS :]
                # 1. The ideal: one sync alone at the same latency.
                worker = _worker(runtime, args)
                try:
                    alone = connect_member(runtime, base, solo, CLINIC, "clinic-1")[0]
                    for other in others:
                        connect_member(runtime, base, other, LAB, "lab-1")
                    wait_all(runtime, [alone], timeout=120)
                finally:
                    worker.stop()
                ideal, _ = runs_span(runtime, [alone])
                # 2. The fleet connects while no worker runs; idle reads.
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=8) as pool:
                    pks = [
                        pk
                        for pk, _ in pool.map(
                            lambda m: connect_member(runtime, base, m, CLINIC, "clinic-1"), fleet
                        )
                    ]
                connect_seconds = time.perf_counter() - started
                with Reader(base, others) as idle:
                    time.sleep(args.idle_seconds)
                sandbox_admin(sandbox.url, "POST", "reset")
                sandbox_admin(sandbox.url, "PATCH", "knobs", {"latency_ms": args.latency_ms})
                # 3. The fleet's syncs on one worker process.
                server, sandbox_pid = server_pid(), sandbox.proc.pid
                server_cpu, sandbox_cpu = cpu_seconds(server), cpu_seconds(sandbox_pid)
                machine_cpu, postgres_cpu = machine_busy_seconds(), postgres_cpu_seconds()
                worker = _worker(runtime, args)
                try:
                    with Reader(base, others) as busy:
                        wait_all(runtime, pks, timeout=args.timeout)
                    server_cpu = cpu_seconds(server) - server_cpu
                    sandbox_cpu = cpu_seconds(sandbox_pid) - sandbox_cpu
                    machine_cpu = machine_busy_seconds() - machine_cpu
                    postgres_cpu = postgres_cpu_seconds() - postgres_cpu
                finally:
                    worker.stop()
                counters = sandbox_admin(sandbox.url, "GET", "counters")
        finally:
            sandbox.stop()
        span, runs = runs_span(runtime, pks)
        with runtime.db.read() as session:
            errors = sum(
                1
                for found in session.scalars(
                    select(Connection.sync_errors).where(Connection.id.in_(pks))
                )
                if found
            )
            resources = session.scalar(
                select(Connection.resource_counts).where(Connection.id == pks[0])
            )
        idle_s, busy_s = Summary.of(idle.samples), Summary.of(busy.samples)
        return {
            "engine": engine,
            "server": server_version(runtime),
            "members": args.members,
            "latency_ms": args.latency_ms,
            "concurrency": args.concurrency,
            "processes": args.processes,
            "worker_env": _extra(args.worker_env),
            "worker_session": args.worker_session,
            "worker_autogroup": worker.autogroup,
            "resources_per_sync": sum((resources or {}).values()),
            "connect_seconds": round(connect_seconds, 1),
            "ideal_seconds": round(ideal, 3),
            "fleet_seconds": round(span, 2),
            "runs": runs,
            "syncs_with_errors": int(errors or 0),
            "syncs_per_min": round(args.members / span * 60, 1),
            "vs_ideal": round(span / ideal, 2),
            "peak_rss_mb": round(worker.peak_rss_mb, 1),
            "children_peak_rss_mb": round(worker.children_peak_rss_mb, 1),
            "children_cpu_seconds": round(worker.children_cpu_seconds, 1),
            "worker_cpu_seconds": round(worker.cpu_seconds, 1),
            "server_cpu_seconds": round(server_cpu, 1),
            "sandbox_cpu_seconds": round(sandbox_cpu, 1),
            "postgres_cpu_seconds": round(postgres_cpu, 1) if engine == "postgresql" else None,
            # Everything the machine ran from the worker's start until all were RETRIEVED.
            "machine_cpu_seconds": round(machine_cpu, 1),
            "machine_cores": os.cpu_count(),
            "budget_concurrent": args.max_concurrent_requests,
            "budget_per_minute": args.max_requests_per_minute,
            "source_max_in_flight": counters["fhir_max_in_flight"],
            "source_max_per_minute": counters["fhir_max_per_minute"],
            "source_requests": counters["fhir_requests"],
            "read_idle": idle_s.as_dict(),
            "read_busy": busy_s.as_dict(),
            "read_p99_ratio": round(busy_s.p99 / idle_s.p99, 2),
        }


def report(result: dict[str, Any]) -> str:
    r = result
    rows = [
        ["syncs/min (one worker)", r["syncs_per_min"], f"≥ {TARGET_SYNCS_PER_MIN:.0f}"],
        ["fleet time / one sync alone", f"{r['fleet_seconds']} s / {r['ideal_seconds']} s", ""],
        [
            "peak RSS of the worker (+ children)",
            f"{r['peak_rss_mb']} MB"
            + (f" ({r['children_peak_rss_mb']} MB children)" if r["children_peak_rss_mb"] else ""),
            f"≤ {TARGET_RSS_MB:.0f} MB",
        ],
        [
            "source: most requests at once",
            r["source_max_in_flight"],
            f"≤ {r['budget_concurrent']} (budget)",
        ],
        [
            "source: most requests in a minute",
            r["source_max_per_minute"],
            f"≤ {r['budget_per_minute']} (budget)",
        ],
        [
            "GET /v1/connections p99 busy / idle",
            f"{r['read_busy']['p99']:.1f} / {r['read_idle']['p99']:.1f} ms = {r['read_p99_ratio']}",
            f"≤ {TARGET_P99_RATIO}",
        ],
        ["syncs ending with errors", r["syncs_with_errors"], "0"],
        [
            "CPU: worker / API server / sandbox",
            f"{r['worker_cpu_seconds']} / {r['server_cpu_seconds']} / {r['sandbox_cpu_seconds']} s",
            "",
        ],
        [
            "CPU: PostgreSQL / whole machine",
            f"{r['postgres_cpu_seconds'] if r['postgres_cpu_seconds'] is not None else '-'}"
            f" / {r['machine_cpu_seconds']} s of {r['machine_cores']} cores",
            "",
        ],
    ]
    return (
        f"{r['engine']} ({r['server']}): {r['members']} members, {r['resources_per_sync']} "
        f"resources a sync, {r['latency_ms']} ms a request, {r['concurrency']} syncs in flight "
        f"at most, {r['runs']} runs\n" + table(["measure", "value", "target"], rows)
    )


def _worker(runtime: Runtime, args: argparse.Namespace) -> Worker:
    return Worker(
        runtime,
        args.concurrency,
        args.processes,
        _extra(args.worker_env),
        own_session=args.worker_session == "own",
    )


def _extra(pairs: list[str]) -> dict[str, str]:
    extra = dict(pair.split("=", 1) for pair in pairs)
    for key in extra:
        if not key.startswith("TETHER_"):
            raise SystemExit(f"--worker-env takes TETHER_ settings, not {key}")
    return extra


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fleet")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--processes", type=int, default=0, help="TETHER_SYNC_PROCESSES")
    parser.add_argument("--max-concurrent-requests", type=int, default=400)
    parser.add_argument("--max-requests-per-minute", type=int, default=60_000)
    # Long enough for the idle p99 to rest on about 800 reads, not 200 (its second-highest).
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="TETHER_X=VALUE",
        help="a setting for the worker process (repeatable), e.g. TETHER_SYNC_DB_THREADS=3",
    )
    parser.add_argument(
        "--worker-session",
        choices=["shared", "own"],
        default="shared",
        help="shared: the worker is in the benchmark's session, with the API server (a "
        "niceness orders it against them); own: it leads a session of its own, as a service "
        "manager starts it, and with autogrouping the kernel shares the CPU between sessions "
        "first (docs/benchmarks.md, Fleet)",
    )
    parser.add_argument("--engine", action="append", choices=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    return run_per_engine(
        "fleet",
        args,
        bench_engine,
        report,
        target_syncs_per_min=TARGET_SYNCS_PER_MIN,
        target_peak_rss_mb=TARGET_RSS_MB,
        target_read_p99_ratio=TARGET_P99_RATIO,
    )
