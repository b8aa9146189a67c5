"""Claiming a connection for one sync run: at most one live run per connection and grant epoch.

:func:`claim_sync` locks the connection row and, when the connection is still CONNECTED in the
given grant epoch and no other run is heartbeating, moves it to RETRIEVING and starts the
heartbeat (which every page's fenced write then renews). What the run needs to know is read
once, into a :class:`Claim`, so the run holds no row and no transaction while it talks to the
source. A run whose heartbeat is older than ``HEARTBEAT_STALE_SECONDS`` is presumed dead: a new
claim takes over, and the due-syncs sweep queues one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tether.connections import lifecycle
from tether.connections.sources import SourceProfile, fhir_base_url, shared_types
from tether.domain import Status, SyncStatus
from tether.identity.liveness import is_live
from tether.runtime import Runtime
from tether.store.models import Connection, DataSource, SyncRun
from tether.sync.budgets import Budget

HEARTBEAT_STALE_SECONDS = 120
DEFAULT_INTERVAL_SECONDS = 86400  # between scheduled syncs, unless the source sets sync_interval


@dataclass(frozen=True)
class Claim:
    """What a sync run knows about its connection, read when the run was claimed."""

    pk: int
    epoch: int
    member_id: str
    slug: str  # the data source's id, stamped into every stored resource's meta.source
    base_url: str  # the source's FHIR base URL
    patient_id: str
    types: tuple[str, ...]  # the resource types to search, in order (those the grant shares)
    cursor: dict[str, str]  # per type, the newest meta.lastUpdated a completed sync stored
    interval: int  # seconds between scheduled syncs
    started: datetime  # when the run was claimed
    counts: dict[str, int]  # resources stored per type when the run started
    budget: Budget = field(default_factory=Budget)  # the source's request limits
    profile: SourceProfile = field(default_factory=SourceProfile)  # how the source differs


def claim_sync(
    runtime: Runtime, *, connection_pk: int, epoch: int, requested: float | None = None
) -> Claim | None:
    """Claim the connection's sync for grant ``epoch``; None when there is nothing to do (not
    CONNECTED, another epoch, no patient, its member or tenant disabled, a live run already
    holds it, or a run has started since the sync was ``requested``: the same sync asked for
    twice, by a job and by the sweep that found it due, runs once, while a "Sync now" asked
    during a run gets a run of its own after it)."""
    with runtime.db.write() as session:
        conn = session.get(Connection, connection_pk, with_for_update=True)
        # The run starts once the row is this claim's: a sweep that looked before then, and
        # saw no live run, is answered by this one (its request is older than this start).
        now = runtime.clock()
        if conn is None or conn.grant_epoch != epoch or conn.status != Status.CONNECTED:
            return None
        live = live_until(conn.sync_status, conn.sync_heartbeat_at)
        if live is not None and now < live:
            return None  # a live sync is already running
        # One query: the member exists, is the tenant's, and neither is disabled.
        if not is_live(session, tenant_id=conn.tenant_id, member_id=conn.member_id):
            return None  # a disabled member or tenant: no sync until enabled again
        source = session.get(DataSource, conn.data_source_id)
        if source is None or not conn.patient_id:
            return None
        if requested is not None and _started_since(session, conn.id, requested):
            return None
        settings = source.settings or {}
        lifecycle.set_sync_status(
            session, conn, SyncStatus.RETRIEVING, now=now, actor="system:sync"
        )
        conn.sync_heartbeat_at = now
        return Claim(
            pk=conn.id,
            epoch=epoch,
            member_id=conn.member_id,
            slug=source.id,
            base_url=fhir_base_url(runtime, source),
            patient_id=conn.patient_id,
            types=shared_types(source, conn.scope),
            cursor=dict(conn.sync_cursor or {}),
            interval=int(settings.get("sync_interval", DEFAULT_INTERVAL_SECONDS)),
            started=now,
            counts={k: int(v) for k, v in (conn.resource_counts or {}).items()},
            budget=Budget.of(settings),
            profile=SourceProfile.of(settings),
        )


def live_until(sync_status: str, heartbeat: datetime | None) -> datetime | None:
    """Until when a RETRIEVING connection's run counts as live (its heartbeat is not yet
    stale); None when no run is going."""
    if sync_status != SyncStatus.RETRIEVING or heartbeat is None:
        return None
    return heartbeat + timedelta(seconds=HEARTBEAT_STALE_SECONDS)


def _started_since(session: Session, connection_pk: int, requested: float) -> bool:
    """Whether the connection's latest run started at or after ``requested`` (epoch seconds):
    it saw everything there was when the sync was asked for."""
    started = session.scalar(
        select(SyncRun.started_at)
        .where(SyncRun.connection_id == connection_pk)
        .order_by(SyncRun.id.desc())
        .limit(1)
    )
    return started is not None and started >= datetime.fromtimestamp(requested, UTC)
