"""One trace from the API request through the job to the source and the database, checked
with the OpenTelemetry SDK's in-memory exporter; attributes never carry secrets or paths."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import MemberCtx
from tests.jobs.conftest import wait_until
from tests.sync.helpers import connected, reload
from tether import tracing
from tether.jobs import EmbeddedWorker, Jobs
from tether.runtime import Runtime

CLINIC = "sandbox-clinic"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()
    provider.shutdown()


def test_sync_now_is_one_trace_down_to_the_source(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    assert isinstance(runtime.jobs, Jobs)
    worker = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)
    worker.start()
    try:
        conn = connected(client, member, runtime, CLINIC, "clinic-1")
        wait_until(lambda: reload(runtime, conn.id).sync_status == "RETRIEVED", timeout=60)
        # The first sync's job span ends just after its outcome is committed: let it end
        # before clearing, or it lands among this trace's spans.
        wait_until(
            lambda: any(s.name == "job sync" and s.end_time for s in spans.get_finished_spans())
        )
        before = reload(runtime, conn.id).last_synced_at
        spans.clear()
        # The caller's own trace continues through tether (W3C traceparent).
        caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        answer = client.post(
            f"/v1/connections/{CLINIC}/sync",
            headers={**member.headers, "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"},
        )
        assert answer.status_code == 202
        wait_until(lambda: reload(runtime, conn.id).last_synced_at != before, timeout=60)
        wait_until(
            lambda: any(s.name == "job sync" and s.end_time for s in spans.get_finished_spans())
        )
    finally:
        worker.stop()
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    server = [s for s in finished if s.kind == SpanKind.SERVER and s.name.startswith("POST")]
    assert len(server) == 1
    root = server[0]
    assert root.name == "POST /v1/connections/{connection_id}/sync"
    assert format(root.context.trace_id, "032x") == caller_trace
    assert root.attributes["http.response.status_code"] == 202
    job = [s for s in finished if s.name == "job sync"]
    assert len(job) == 1 and job[0].kind == SpanKind.CONSUMER
    assert _ancestors(job[0], by_id)[-1] is root  # through the queue, in the same trace
    source_calls = [s for s in finished if s.kind == SpanKind.CLIENT]
    assert source_calls, "the sync's requests to the source are traced"
    for call in source_calls:
        assert job[0] in _ancestors(call, by_id)
        assert call.attributes["tether.source"] == CLINIC
        assert call.attributes["http.response.status_code"] == 200
    writes = [s for s in finished if s.name == "db.write" and job[0] in _ancestors(s, by_id)]
    assert writes, "the sync's database writes are traced"
    # The request's own write (the sync request) hangs under the server span.
    assert any(root in _ancestors(s, by_id) for s in finished if s.name == "db.write")
    # No attribute carries a token, a member id or a patient id, nor a path or query.
    text = repr([dict(s.attributes or {}) for s in finished])
    for secret in (member.token, member.member_id, "clinic-1", "Bearer", "?"):
        assert secret not in text


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        chain.append(by_id[parent.span_id])
        parent = by_id[parent.span_id].parent
    return chain


def test_without_an_exporter_nothing_is_recorded(runtime: Runtime) -> None:
    assert not tracing.enabled()
    assert tracing.carrier() == {}
    with tracing.span("anything") as span:
        assert not span.is_recording()
