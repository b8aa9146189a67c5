"""When connections sync: the next scheduled run, "Sync now", and finding the runs that are due.

Every CONNECTED connection has a due time (``sync_schedule``, written by
:mod:`tether.connections.schedule`). A finished sync sets it (:func:`next_sync_at`)
one interval ahead (the source's ``sync_interval``, ±10 % so syncs scheduled together drift
apart), or when the source's Retry-After says, or at most 15 minutes ahead after the source was
down or throttling. :func:`request_sync` ("Sync now") makes it due now and queues the ``sync``
job.
:func:`claim_due_syncs` finds the due ones (and RETRIEVING ones whose run stopped heartbeating)
for the due-syncs sweep to queue, skipping disabled members and tenants.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select

from tether.connections import schedule
from tether.connections.queries import of_live_accounts, require_connection
from tether.domain import Status
from tether.errors import Conflict
from tether.identity.principals import MemberPrincipal
from tether.runtime import Runtime
from tether.store.db import among
from tether.store.models import Connection
from tether.sync.claim import live_until

RETRY_SOON_SECONDS = 900
SYNC_NOW_PRIORITY = 10
JITTER_FRACTION = 0.1
CLAIM_CHUNK = 100  # due syncs claimed per write transaction


def next_sync_at(
    now: datetime, *, interval: int, retry_after: float | None, soon: bool
) -> datetime:
    """When to sync next: after ``retry_after`` seconds when the source asked for that (at
    least 1 s), within ``RETRY_SOON_SECONDS`` when ``soon`` (a transient failure), else one
    ``interval`` ahead with ±``JITTER_FRACTION`` of jitter."""
    if retry_after:
        return now + timedelta(seconds=max(retry_after, 1))
    if soon:
        return now + timedelta(seconds=min(RETRY_SOON_SECONDS, interval))
    jitter = interval * JITTER_FRACTION
    return now + timedelta(seconds=interval + random.uniform(-jitter, jitter))


def request_sync(runtime: Runtime, *, member: MemberPrincipal, connection_id: str) -> None:
    """ "Sync now": the sync is due immediately, and its job is queued once that is committed."""
    now = runtime.clock()
    with runtime.db.write() as session:
        conn = require_connection(
            session, member_id=member.member_id, connection_id=connection_id, for_update=True
        )
        if conn.status != Status.CONNECTED:
            raise Conflict(
                f"only a CONNECTED connection can sync; this one is {conn.status}",
                code="NOT_CONNECTED",
            )
        schedule.set_due(session, conn.id, now)
        pk, epoch, source = conn.id, conn.grant_epoch, conn.data_source_id
    runtime.enqueue(
        "sync",
        priority=SYNC_NOW_PRIORITY,  # ahead of scheduled syncs on the queue, too
        connection_pk=pk,
        epoch=epoch,
        trigger="manual",
        tenant=member.tenant_id,
        source=source,
        requested=now.timestamp(),
    )


class DueSync(NamedTuple):
    pk: int
    epoch: int
    tenant: str
    source: str


def claim_due_syncs(
    runtime: Runtime, *, limit: int = 100, requeue_after: int = 300, now: datetime | None = None
) -> list[DueSync]:
    """Connections whose sync is due (or whose RETRIEVING heartbeat went stale), of live
    members of live tenants, among the ``limit`` soonest due (in no particular order: the
    sync engine orders the runs); those with a live run, or of a disabled member or tenant,
    are passed over.

    Every one looked at gets its due time pushed ``requeue_after`` seconds ahead: a lost
    message is re-driven later but a queued one is not queued twice, and one passed over is
    looked at again then (a re-enabled account's syncs resume within ``requeue_after``), or,
    with a live run, when that run's heartbeat would go stale (a crashed run is re-driven as
    soon as it is presumed dead). So a claim's work is ``limit`` rows whatever the backlog:
    passed-over rows never pile up at the head of the schedule for every later claim to walk
    past (a disabled tenant with a million due syncs did that). They are claimed
    :data:`CLAIM_CHUNK` at a time, a transaction each: on SQLite a write transaction holds the
    only write lock, and one that claimed 1,000 rows of a large fleet held it for 60 ms
    (``python -m bench scale``).

    ``now`` (default: the clock) is the moment the claim judges by, and the one to queue the
    runs as asked for (``requested``): a run that starts after it saw everything the sweep
    did, and answers its request.
    """
    now = now or runtime.clock()
    found: list[DueSync] = []
    looked = 0
    while looked < limit:
        want = min(CLAIM_CHUNK, limit - looked)
        seen, claimed = _claim_due(runtime, now, want, requeue_after)
        looked += seen
        found.extend(claimed)
        if seen < want:
            break
    return found


def _claim_due(
    runtime: Runtime, now: datetime, limit: int, requeue_after: int
) -> tuple[int, list[DueSync]]:
    """``(rows looked at, those claimed)``. The due rows come from the schedule alone, by its
    index in due order (PostgreSQL: skipping rows another sweep holds), taken and pushed ahead
    in one statement; only then are their connections read. A join in the first query let
    PostgreSQL plan for the few rows its statistics said were due and read the whole backlog
    (9,926 buffers for 100 rows, at 100,000 members with 1,600 due)."""
    with runtime.db.write() as session:
        due = schedule.take_due(
            session, now=now, limit=limit, until=now + timedelta(seconds=requeue_after)
        )
        if not due:
            return 0, []
        rows = session.execute(
            of_live_accounts(
                select(
                    Connection.id,
                    Connection.grant_epoch,
                    Connection.tenant_id,
                    Connection.data_source_id,
                    Connection.status,
                    Connection.sync_status,
                    Connection.sync_heartbeat_at,
                )
            ).where(among(session, Connection.id, due))
        ).all()
        # Checked here, not in SQL: SQLite, which has no statistics, would rather walk the
        # status index (every CONNECTED connection) than look up the 100 keys.
        claimed: list[DueSync] = []
        running: dict[int, datetime] = {}  # a live run's: looked at again when it goes stale
        for pk, epoch, tenant, source, status, sync_status, heartbeat in rows:
            if status != Status.CONNECTED:
                continue
            live = live_until(sync_status, heartbeat)
            if live is not None and now < live:
                running[pk] = live
            else:
                claimed.append(DueSync(pk, epoch, tenant, source))
        if running:
            schedule.set_due_many(session, running)
    return len(due), claimed
