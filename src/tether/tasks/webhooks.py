"""Job entry points of events and webhooks: the delivery job and the sweeps behind it."""

from __future__ import annotations

from tether import events
from tether.runtime import Runtime
from tether.webhooks.delivery import TASK, deliver, due_endpoints


def deliver_endpoint(runtime: Runtime, *, endpoint_id: str) -> None:
    deliver(runtime, endpoint_id=endpoint_id)


def due_deliveries(runtime: Runtime) -> int:
    """Endpoints with a delivery due and no worker on them: queue them again."""
    found = due_endpoints(runtime)
    for endpoint_id in found:
        runtime.enqueue(TASK, endpoint_id=endpoint_id)
    return len(found)


def expired_events(runtime: Runtime) -> int:
    """Events past ``events_retention_days`` (and their deliveries) go, a batch per sweep."""
    with runtime.db.write() as session:
        return events.purge(
            session, now=runtime.clock(), retention_days=runtime.settings.events_retention_days
        )
