"""OpenTelemetry tracing: off unless an OTLP endpoint is configured.

One trace follows a piece of work from the API request that asked for it, through the job
queue (the W3C ``traceparent`` travels in the job's message), into the job's run, each request
to the data source and each database write transaction::

    POST /v1/connections/{connection_id}/sync        SERVER   (tether.http.middleware)
      db.write                                                (tether.store.db)
      job sync                                       CONSUMER (tether.jobs.binding)
        GET clinic                                   CLIENT   (tether.metrics.MeteredTransport)
        db.write …

Attributes are chosen, not captured: route templates instead of paths, the source's host
instead of its URLs, never query strings, headers or bodies; every string attribute also goes
through the log redaction (:func:`tether.logging.redact`). Until :func:`install` is called the
tracer is OpenTelemetry's no-op one, so the spans cost next to nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import NoOpTracerProvider, Span, SpanKind, Tracer, TracerProvider

from tether.logging import redact

__all__ = ["SpanKind", "carrier", "extract", "install", "span", "tracer", "uninstall"]

_NOOP: TracerProvider = NoOpTracerProvider()
_provider: TracerProvider = _NOOP


def install(provider: TracerProvider) -> None:
    """Send tether's spans to ``provider`` (the composition root builds an OTLP one; tests an
    in-memory one). Process-wide, like the OpenTelemetry API itself."""
    global _provider
    _provider = provider


def uninstall() -> None:
    """Back to the no-op tracer."""
    global _provider
    _provider = _NOOP


def tracer() -> Tracer:
    return _provider.get_tracer("tether")


def enabled() -> bool:
    return _provider is not _NOOP


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        clean[key] = redact(value, key) if isinstance(value, str) else value
    return clean


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: context.Context | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span named ``name`` (a child of the current one, or of ``parent``) with redacted
    ``attributes``; an exception escaping it is recorded and marks the span as an error."""
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=_clean(attributes or {})
    ) as current:
        yield current


def set_attributes(current: Span, attributes: Mapping[str, Any]) -> None:
    if current.is_recording():
        current.set_attributes(_clean(attributes))


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers, to travel with a job (empty when no trace
    is being recorded)."""
    if not enabled():
        return {}
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, str] | None) -> context.Context | None:
    """The trace context a job's message or a request's headers carried, if any."""
    if not headers or not enabled():
        return None
    return propagate.extract(dict(headers))


def configure_otlp(endpoint: str, *, service_name: str) -> TracerProvider:
    """A batching OTLP/HTTP exporter to ``endpoint`` (e.g. ``http://collector:4318``)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SdkTracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    trace.set_tracer_provider(provider)  # for libraries that trace through the global API
    return provider
