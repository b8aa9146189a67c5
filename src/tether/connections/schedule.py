"""When a connection's next sync is due: the ``sync_schedule`` table's one writer.

A CONNECTED connection that has a sync coming has one row, ``due_at``; any other has none
(:func:`tether.connections.lifecycle.transition` drops it when a connection leaves CONNECTED),
so the due-syncs claim walks ``ix_sync_schedule_due`` over live schedules only. The claim
takes 100 rows and pushes them ahead per transaction (:func:`take_due`); keeping the time
apart from the wide connection row makes that a write of small rows with two index entries
each, not of 1 to 2 KB rows with nine (``python -m bench scale``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tether.store.db import upsert_insert
from tether.store.models import SyncSchedule


def set_due(session: Session, connection_pk: int, due_at: datetime | None) -> None:
    """Make the connection's next sync due at ``due_at``; None: no sync is scheduled."""
    if due_at is None:
        session.execute(delete(SyncSchedule).where(SyncSchedule.connection_id == connection_pk))
        return
    statement = upsert_insert(session, SyncSchedule).values(
        connection_id=connection_pk, due_at=due_at
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[SyncSchedule.connection_id], set_={"due_at": due_at}
        )
    )


def set_due_many(session: Session, due: Mapping[int, datetime]) -> None:
    """Each scheduled sync of ``due``'s connections due at its own time (those that have one)."""
    session.execute(
        update(SyncSchedule),
        [{"connection_id": pk, "due_at": at} for pk, at in due.items()],
    )


def take_due(session: Session, *, now: datetime, limit: int, until: datetime) -> list[int]:
    """Push the ``limit`` soonest syncs due by ``now`` to ``until``, and return their
    connections' keys (in no particular order), in one statement: an ``UPDATE … RETURNING``
    over the due index's head. On PostgreSQL rows another claim holds are skipped, not
    waited for (``FOR UPDATE SKIP LOCKED``)."""
    soonest = (
        select(SyncSchedule.connection_id)
        .where(SyncSchedule.due_at <= now)
        .order_by(SyncSchedule.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(
        session.scalars(
            update(SyncSchedule)
            .where(SyncSchedule.connection_id.in_(soonest))
            .values(due_at=until)
            .returning(SyncSchedule.connection_id)
        )
    )
