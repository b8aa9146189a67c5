"""Job entry points: tether's own tasks and sweeps, as one explicit list.

The composition root (:mod:`tether.bootstrap`) adds :data:`TASKS` and :data:`SWEEPS` to the job
registry; nothing here declares itself on import. Task arguments are JSON values: a
connection's row key (``connection_pk``, never the source slug that services call
``connection_id``) and the grant epoch.
"""

from __future__ import annotations

from tether.jobs.registry import SweepSpec, TaskSpec
from tether.jobs.retry import RetryPolicy
from tether.tasks import connections, exports, identity, sync, webhooks

TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("sync", sync.sync, RetryPolicy(retries=5)),
    TaskSpec("refresh", sync.refresh, RetryPolicy(retries=3)),
    TaskSpec("delete", connections.delete, RetryPolicy(retries=5)),
    # Retries are its own (the delivery schedule, in the database), not the queue's.
    TaskSpec("webhooks.deliver", webhooks.deliver_endpoint, RetryPolicy(retries=0)),
    # A failure is the export's status, not a retry; a crash is re-driven by the sweep.
    TaskSpec("exports.run", exports.run, RetryPolicy(retries=0)),
)
SWEEPS: tuple[SweepSpec, ...] = (
    SweepSpec("due-syncs", sync.due_syncs),
    SweepSpec("expiring-tokens", sync.expiring_tokens),
    SweepSpec("stale-deletes", connections.stale_deletes),
    SweepSpec("expiring-grants", connections.expiring_grants),
    SweepSpec("sdk-refresh-tokens", identity.expired_refresh_tokens),
    SweepSpec("source-health", sync.source_health_flush),
    SweepSpec("webhook-deliveries", webhooks.due_deliveries),
    SweepSpec("events-retention", webhooks.expired_events),
    SweepSpec("exports", exports.expired_and_stale),
)

__all__ = ["SWEEPS", "TASKS"]
