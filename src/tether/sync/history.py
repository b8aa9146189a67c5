"""Sync history: every sync run as it ended, the last :data:`KEEP` per connection.

:func:`record_run` is called by :func:`~tether.sync.outcome.finish_sync` in the transaction that
writes the run's outcome, so the history and the connection never disagree; it also says what
the run added and updated per type, which the ``sync.completed`` event carries.
:func:`connection_syncs` is the read side (REST for the member and for the tenant, the member
page, the console).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tether.connections.queries import require_connection
from tether.identity.principals import MemberPrincipal
from tether.runtime import Runtime
from tether.store.models import Connection, SyncRun

KEEP = 100  # runs kept per connection
TRIGGERS = ("initial", "scheduled", "manual", "re-established")


def added_and_updated(
    before: Mapping[str, int], after: Mapping[str, int], written: Mapping[str, int]
) -> dict[str, dict[str, int]]:
    """Per type, how many resources the run added (stored now, not before) and updated (the
    rest of what it wrote). Nothing deletes resources during a sync, so the difference of the
    counts is what was new."""
    counts: dict[str, dict[str, int]] = {}
    for rtype in sorted(set(written) | {t for t in after if after[t] != before.get(t, 0)}):
        added = max(0, after.get(rtype, 0) - before.get(rtype, 0))
        updated = max(0, written.get(rtype, 0) - added)
        if added or updated:
            counts[rtype] = {"added": added, "updated": updated}
    return counts


def record_run(
    session: Session,
    conn: Connection,
    *,
    trigger: str,
    started: datetime,
    finished: datetime,
    outcome: str,
    counts: dict[str, dict[str, int]],
    pages: int,
    requests: int,
    retries: int,
    throttled_seconds: float,
    errors: list[dict[str, Any]],
) -> None:
    """Add the run and drop the connection's runs beyond the newest :data:`KEEP`."""
    session.add(
        SyncRun(
            connection_id=conn.id,
            trigger=trigger if trigger in TRIGGERS else "scheduled",
            started_at=started,
            finished_at=finished,
            outcome=outcome,
            counts=counts,
            pages=pages,
            requests=requests,
            retries=retries,
            throttled_seconds=round(throttled_seconds, 3),
            errors=errors,
        )
    )
    session.flush()  # the new run counts among the newest
    # One statement, not a read and a delete: this runs at the end of every sync. While the
    # connection has no more than KEEP runs the subquery is empty, ``id < NULL`` matches
    # nothing, and the statement only reads the newest KEEP ids of the connection's index.
    oldest_kept = (
        select(SyncRun.id)
        .where(SyncRun.connection_id == conn.id)
        .order_by(SyncRun.id.desc())
        .offset(KEEP - 1)
        .limit(1)
        .scalar_subquery()
    )
    session.execute(
        delete(SyncRun).where(SyncRun.connection_id == conn.id, SyncRun.id < oldest_kept)
    )


@dataclass(frozen=True)
class SyncRunView:
    id: int
    trigger: str
    started: datetime
    finished: datetime
    outcome: str
    counts: Mapping[str, Mapping[str, int]]
    pages: int
    requests: int
    retries: int
    throttled_seconds: float
    errors: tuple[Mapping[str, Any], ...]

    @classmethod
    def of(cls, run: SyncRun) -> SyncRunView:
        return cls(
            id=run.id,
            trigger=run.trigger,
            started=run.started_at,
            finished=run.finished_at,
            outcome=run.outcome,
            counts=dict(run.counts or {}),
            pages=run.pages,
            requests=run.requests,
            retries=run.retries,
            throttled_seconds=run.throttled_seconds,
            errors=tuple(run.errors or ()),
        )


def runs_of(session: Session, connection_pk: int, *, limit: int = KEEP) -> list[SyncRunView]:
    rows = session.scalars(
        select(SyncRun)
        .where(SyncRun.connection_id == connection_pk)
        .order_by(SyncRun.id.desc())
        .limit(limit)
    )
    return [SyncRunView.of(run) for run in rows]


def connection_syncs(
    runtime: Runtime, *, member: MemberPrincipal, connection_id: str, limit: int = KEEP
) -> list[SyncRunView]:
    """The member's connection's sync runs, newest first (404 for another member's)."""
    with runtime.db.read() as session:
        conn = require_connection(session, member_id=member.member_id, connection_id=connection_id)
        return runs_of(session, conn.id, limit=limit)


def member_recent_runs(
    runtime: Runtime, *, member: MemberPrincipal, limit: int = 5
) -> dict[str, list[SyncRunView]]:
    """Per connection (by its connectionId), the member's last ``limit`` sync runs."""
    with runtime.db.read() as session:
        conns = session.execute(
            select(Connection.id, Connection.data_source_id).where(
                Connection.member_id == member.member_id
            )
        ).all()
        return {source: runs_of(session, pk, limit=limit) for pk, source in conns}
