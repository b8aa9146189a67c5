"""Events to webhooks: delivery latency, throughput, and what the outbox adds to a transition.

    python -m bench webhooks [--latency-events N] [--events N] [--transitions N]
                             [--queue sqlite|redis] [--engine sqlite|postgresql]

A receiver on loopback (http.server, answering 204 at once) gets every delivery; an embedded
worker with the default settings (two threads; the SQLite queue polls at most every second,
Redis blocks) sends them. Measured:

- latency: ``--latency-events`` events committed one at a time, 100 ms apart (an idle
  system), from the commit returning to the receiver reading the request: p50 / p99.
  Target (issue #14): p99 ≤ 1 s.
- throughput: ``--events`` events committed back to back for one endpoint (one line, in
  order), deliveries per second from the first commit to the last delivery.
- outbox overhead: a lifecycle transition (CONNECTED → CONNECTED, re-authorized in place) in
  its own write transaction, ``--transitions`` times: with the event and a delivery row (the
  tenant has one endpoint), against the same transaction with the event write switched off
  (the baseline, measured in the same run). Target: ratio ≤ 1.10.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import insert

from bench._support import (
    Stopwatch,
    Summary,
    bench_runtime,
    run_per_engine,
    server_version,
    table,
)
from tether import events
from tether.bootstrap import build_jobs, ensure_directory
from tether.connections import lifecycle
from tether.domain import Status
from tether.identity.principals import TenantPrincipal
from tether.jobs import EmbeddedWorker, Jobs, make_huey
from tether.runtime import Runtime
from tether.store.models import Connection, Member, Tenant, WebhookEndpoint, utcnow
from tether.webhooks import endpoints

TARGET_LATENCY_P99_MS = 1000.0
TARGET_OUTBOX_RATIO = 1.10
TENANT = "ten_bench"


class _Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                now = time.perf_counter()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver.cond:
                    receiver.arrived.setdefault(self.headers["webhook-id"], now)
                    receiver.cond.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def wait(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not ids.issubset(self.arrived):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(ids - set(self.arrived))} deliveries missing")
                self.cond.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _emit(runtime: Runtime) -> tuple[str, float]:
    with runtime.db.write() as session:
        event_id = events.record(
            session,
            tenant_id=TENANT,
            type=events.SYNC_COMPLETED,
            data={"tenantId": TENANT},
            now=runtime.clock(),
        )
    return event_id, time.perf_counter()


def _seed(runtime: Runtime) -> int:
    now = utcnow()
    with runtime.db.write() as session:
        session.execute(insert(Tenant).values(id=TENANT, name="Bench"))
        session.execute(insert(Member).values(id="mem_bench", tenant_id=TENANT, external_id="m0"))
        conn = Connection(
            member_id="mem_bench",
            tenant_id=TENANT,
            data_source_id="sandbox-clinic",
            status="CONNECTED",
            sync_status="RETRIEVED",
            sync_errors=[],
            created_at=now,
            status_updated_at=now,
            grant_epoch=1,
            resource_counts={},
            sync_cursor={},
        )
        session.add(conn)
        session.flush()
        return conn.id


def _transitions(runtime: Runtime, pk: int, times: int) -> Summary:
    samples = []
    for _ in range(times):
        with Stopwatch() as sw, runtime.db.write() as session:
            conn = session.get(Connection, pk, with_for_update=True)
            assert conn is not None
            lifecycle.transition(
                session,
                conn,
                Status.CONNECTED,
                action="connection.reauthorized",
                actor="bench",
                now=runtime.clock(),
            )
        samples.append(sw.ms)
    return Summary.of(samples)


def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    receiver = _Receiver()
    with bench_runtime(engine) as runtime:
        runtime.settings = runtime.settings.model_copy(update={"webhooks_allow_private": True})
        ensure_directory(runtime)
        pk = _seed(runtime)
        queue = args.queue
        if queue == "redis":
            url = os.environ.get("TETHER_TEST_REDIS_URL")
            if not url:
                raise SystemExit("--queue redis needs scripts/with-services (Redis)")
            assert isinstance(runtime.jobs, Jobs)
            runtime.jobs.close()
            runtime.jobs = Jobs(runtime, huey=make_huey(url, name=f"bench-{os.getpid()}"))
        elif not isinstance(runtime.jobs, Jobs):
            runtime.jobs = build_jobs(runtime)
        tenant = TenantPrincipal(tenant_id=TENANT)

        # The outbox's cost first, with no worker running (an idle database).
        original = events.record_for_connection
        events.record_for_connection = lambda *a, **k: None  # type: ignore[assignment]
        try:
            _transitions(runtime, pk, 20)  # warm-up
            without = _transitions(runtime, pk, args.transitions)
        finally:
            events.record_for_connection = original  # type: ignore[assignment]
        endpoints.create_endpoint(runtime, tenant=tenant, url=receiver.url)
        with_outbox = _transitions(runtime, pk, args.transitions)
        with runtime.db.write() as session:  # those events' deliveries are not measured
            session.query(WebhookEndpoint).delete()
        endpoints.create_endpoint(runtime, tenant=tenant, url=receiver.url)

        assert isinstance(runtime.jobs, Jobs)
        worker = EmbeddedWorker(runtime.jobs, sweep_interval=None)
        worker.start()
        try:
            latencies = []
            for _ in range(args.latency_events):
                event_id, committed = _emit(runtime)
                receiver.wait({event_id}, timeout=30)
                latencies.append((receiver.arrived[event_id] - committed) * 1000)
                time.sleep(0.1)
            latency = Summary.of(latencies)
            started = time.perf_counter()
            ids = {_emit(runtime)[0] for _ in range(args.events)}
            committed_all = time.perf_counter() - started
            receiver.wait(ids, timeout=max(600.0, args.events / 5))
            elapsed = max(receiver.arrived[i] for i in ids) - started
        finally:
            worker.stop()
            if queue == "redis" and isinstance(runtime.jobs, Jobs):
                runtime.jobs.huey.flush()
            receiver.close()
        return {
            "engine": engine,
            "server": server_version(runtime),
            "queue": queue,
            "latency_ms": latency.as_dict(),
            "events": args.events,
            "commit_seconds": round(committed_all, 2),
            "deliver_seconds": round(elapsed, 2),
            "deliveries_per_second": round(args.events / elapsed, 1),
            "transition_without_outbox_ms": without.as_dict(),
            "transition_with_outbox_ms": with_outbox.as_dict(),
            "outbox_ratio_p50": round(with_outbox.p50 / without.p50, 3),
        }


def report(result: dict[str, Any]) -> str:
    rows = [
        [name, r["n"], r["p50"], r["p95"], r["p99"], r["max"]]
        for name, r in (
            ("commit → delivered", result["latency_ms"]),
            ("transition, no outbox (baseline)", result["transition_without_outbox_ms"]),
            ("transition + event + delivery row", result["transition_with_outbox_ms"]),
        )
    ]
    p99 = result["latency_ms"]["p99"]
    ratio = result["outbox_ratio_p50"]
    return (
        f"{result['engine']} ({result['server']}), {result['queue']} queue\n"
        + table(["ms", "n", "p50", "p95", "p99", "max"], rows)
        + f"\n{result['events']:,} events: committed in {result['commit_seconds']} s, all "
        f"delivered after {result['deliver_seconds']} s = {result['deliveries_per_second']}/s"
        + f"\nlatency p99 ≤ {TARGET_LATENCY_P99_MS:.0f} ms: "
        + ("met" if p99 <= TARGET_LATENCY_P99_MS else "MISSED")
        + f"; outbox ratio (p50) {ratio} ≤ {TARGET_OUTBOX_RATIO}: "
        + ("met" if ratio <= TARGET_OUTBOX_RATIO else "MISSED")
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench webhooks", description=__doc__)
    parser.add_argument("--latency-events", type=int, default=200)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--transitions", type=int, default=500)
    parser.add_argument("--queue", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args(argv)
    return run_per_engine(
        "webhooks",
        args,
        bench_engine,
        report,
        target_latency_p99_ms=TARGET_LATENCY_P99_MS,
        target_outbox_ratio=TARGET_OUTBOX_RATIO,
    )
