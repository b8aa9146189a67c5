"""The fleet at a glance, read from the database for the metrics endpoint and the operators:
connections by status, syncStatus and source; the sync backlog; deletes still running; the
job queue's depth and wait. The counts are whole-table ``GROUP BY`` reads (no member ids)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import exists, func, select

from tether.domain import SyncStatus
from tether.metrics import Gauge
from tether.runtime import Runtime
from tether.store.models import (
    Connection,
    Event,
    FhirResource,
    SourceHealthRow,
    SyncSchedule,
    WebhookDelivery,
    WebhookEndpoint,
)


def gauges(runtime: Runtime) -> Iterator[Gauge]:
    """Everything the fleet gauges say now (see ``docs/operations.md`` for each name)."""
    now = runtime.clock()
    with runtime.db.read() as session:
        by_state = session.execute(
            select(
                Connection.status,
                Connection.sync_status,
                Connection.data_source_id,
                func.count(),
            ).group_by(Connection.status, Connection.sync_status, Connection.data_source_id)
        ).all()
        # The oldest due sync not running: the schedule's due index from its head, each row's
        # connection by key (only CONNECTED connections are scheduled). With the join's
        # conditions on connections, SQLite would walk every CONNECTED one instead.
        oldest_due = session.scalar(
            select(SyncSchedule.due_at)
            .where(
                SyncSchedule.due_at <= now,
                ~exists().where(
                    Connection.id == SyncSchedule.connection_id,
                    Connection.sync_status == SyncStatus.RETRIEVING,
                ),
            )
            .order_by(SyncSchedule.due_at)
            .limit(1)
        )
        degraded = session.scalars(
            select(SourceHealthRow.data_source_id).where(
                SourceHealthRow.degraded_since.is_not(None)
            )
        ).all()
        rows_left = session.scalar(
            select(func.count())
            .select_from(FhirResource)
            .join(Connection, Connection.id == FhirResource.connection_id)
            .where(Connection.sync_status == SyncStatus.DELETING)
        )
        # Deliveries waiting for enabled endpoints (a disabled one's wait for the tenant).
        pending, oldest_event = session.execute(
            select(func.count(), func.min(Event.created_at))
            .select_from(WebhookDelivery)
            .join(Event, Event.id == WebhookDelivery.event_pk)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.state == "pending", WebhookEndpoint.disabled_at.is_(None))
        ).one()
        disabled_endpoints = session.scalar(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.disabled_at.is_not(None))
        )
    yield Gauge(
        "tether_connections",
        "Connections by status, syncStatus and data source.",
        ("status", "sync_status", "source"),
        tuple(((status, sync, source), float(n)) for status, sync, source, n in by_state),
    )
    backlog = (now - oldest_due).total_seconds() if oldest_due is not None else 0.0
    yield Gauge(
        "tether_sync_backlog_seconds",
        "How long the longest-overdue scheduled or requested sync has been due (0: none).",
        (),
        (((), max(0.0, backlog)),),
    )
    yield Gauge(
        "tether_source_degraded",
        "1 for each data source failing for everyone (GET /v1/data-sources/{id}/health).",
        ("source",),
        tuple(((source,), 1.0) for source in sorted(degraded)),
    )
    yield Gauge(
        "tether_delete_rows_left",
        "Stored resources still to delete for connections being deleted.",
        (),
        (((), float(rows_left or 0)),),
    )
    yield Gauge(
        "tether_webhook_pending",
        "Webhook deliveries waiting to go out to enabled endpoints.",
        (),
        (((), float(pending or 0)),),
    )
    lag = (now - oldest_event).total_seconds() if oldest_event is not None else 0.0
    yield Gauge(
        "tether_webhook_oldest_pending_seconds",
        "Age of the oldest event still waiting for an enabled endpoint (0: none).",
        (),
        (((), max(0.0, lag)),),
    )
    yield Gauge(
        "tether_webhook_endpoints_disabled",
        "Webhook endpoints tether stopped delivering to (410, failing for 5 days, or the tenant).",
        (),
        (((), float(disabled_endpoints or 0)),),
    )
    stats = getattr(runtime.jobs, "queue_stats", None)
    if callable(stats):
        try:
            depth, oldest_wait = stats()
        except Exception:  # the queue is down: say so without failing the scrape
            depth, oldest_wait = -1, None
        yield Gauge(
            "tether_queue_depth",
            "Jobs waiting in the queue (-1: the queue could not be read).",
            (),
            (((), float(depth)),),
        )
        yield Gauge(
            "tether_queue_oldest_wait_seconds",
            "How long the longest-waiting of the next queued jobs has waited since it was due.",
            (),
            (((), float(oldest_wait or 0.0)),),
        )
