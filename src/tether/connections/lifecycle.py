"""The connection lifecycle: every status change is written here, and only here.

```
(none) --getOauthUrl+callback--> CONNECTED/PENDING --sync--> RETRIEVING --> RETRIEVED | ERROR
CONNECTED --refresh fails (invalid_grant) / no refresh token and access expired--> EXPIRED
CONNECTED --disconnectConnection--> DISCONNECTED           (data stays; no retrieval)
any live  --deleteConnection--> DELETED/DELETING --async--> DELETED/DATA_DELETED
EXPIRED | DISCONNECTED | ERROR | DELETED(after DATA_DELETED) --getOauthUrl+callback--> CONNECTED
```

:func:`transition` checks the move against :data:`ALLOWED`, sets ``statusUpdated`` and writes an
audit event (who, what, when; never tokens, never health data) and the tenant's event
(``connection.connected`` …, :mod:`tether.events`) in the same transaction. A move that is not
allowed raises :class:`~tether.errors.Conflict`, never a silent change. The data pipeline's
state (``syncStatus``) moves with the status in :func:`transition`, or on its own in
:func:`set_sync_status` (a sync claimed, finished or cut short; a deletion finished): nothing
else writes either column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tether import events
from tether.connections import schedule
from tether.domain import Status, SyncStatus
from tether.errors import Conflict
from tether.store.models import AuditEvent, Connection, Member

S = Status

ALLOWED: dict[Status | None, frozenset[Status]] = {
    None: frozenset({S.CONNECTED}),
    S.CONNECTED: frozenset(
        {S.CONNECTED, S.EXPIRED, S.DISCONNECTED, S.ERROR, S.DELETED, S.ACCESS_ENDED}
    ),
    S.EXPIRED: frozenset({S.CONNECTED, S.DISCONNECTED, S.DELETED, S.ACCESS_ENDED}),
    S.DISCONNECTED: frozenset({S.CONNECTED, S.DELETED, S.ACCESS_ENDED}),
    S.ERROR: frozenset({S.CONNECTED, S.EXPIRED, S.DISCONNECTED, S.DELETED, S.ACCESS_ENDED}),
    S.DELETED: frozenset({S.CONNECTED}),
    S.ACCESS_ENDED: frozenset({S.DELETED}),
}


class Stated(Protocol):
    """What the lifecycle's checks read of a connection (a row or a view's plain row)."""

    @property
    def status(self) -> str: ...
    @property
    def sync_status(self) -> str: ...


def current(conn: Stated | None) -> Status | None:
    return None if conn is None else Status(conn.status)


def check(conn: Stated | None, to: Status) -> None:
    """Raise Conflict unless ``conn`` may move to ``to`` now."""
    refused = refusal(conn, to)
    if refused is not None:
        raise refused


def refusal(conn: Stated | None, to: Status) -> Conflict | None:
    """Why ``conn`` may not move to ``to`` now, or None when it may (the views ask this of
    every row they show, so a refusal is returned, not raised)."""
    frm = current(conn)
    if to not in ALLOWED[frm]:
        return Conflict(
            f"a {frm.value if frm else 'new'} connection cannot become {to.value}",
            code="INVALID_TRANSITION",
        )
    if (
        conn is not None
        and frm == S.DELETED
        and to == S.CONNECTED
        and conn.sync_status != SyncStatus.DATA_DELETED
    ):
        return Conflict(
            "this connection's data is still being deleted; try again when it is DATA_DELETED",
            code="DELETION_IN_PROGRESS",
        )
    return None


def audit(
    session: Session,
    *,
    conn: Connection,
    action: str,
    actor: str,
    now: datetime,
    frm: Status | None = None,
    to: Status | None = None,
    detail: dict[str, Any] | None = None,
) -> Member:
    """Add the audit event; returns the connection's member (loaded for it)."""
    member = session.get(Member, conn.member_id)
    assert member is not None
    session.add(
        AuditEvent(
            tenant_id=member.tenant_id,
            member_id=conn.member_id,
            data_source_id=conn.data_source_id,
            action=action,
            actor=actor,
            from_status=frm.value if frm else None,
            to_status=to.value if to else None,
            detail=detail or {},
            at=now,
        )
    )
    return member


def transition(
    session: Session,
    conn: Connection,
    to: Status,
    *,
    action: str,
    actor: str,
    now: datetime,
    sync_status: SyncStatus | None = None,
    detail: dict[str, Any] | None = None,
    was_new: bool = False,
) -> None:
    """Move ``conn`` to ``to`` (and optionally ``sync_status``), with an audit event."""
    frm = None if was_new else current(conn)
    if not was_new:
        check(conn, to)
    conn.status = to.value
    conn.status_updated_at = now
    if frm == Status.CONNECTED and to != Status.CONNECTED:
        schedule.set_due(session, conn.id, None)  # only CONNECTED connections sync
    if sync_status is not None:
        conn.sync_status = sync_status.value
    member = audit(
        session, conn=conn, action=action, actor=actor, now=now, frm=frm, to=to, detail=detail
    )
    events.record_for_connection(
        session,
        conn,
        events.BY_STATUS[to.value],
        now=now,
        extra={"previousStatus": frm.value if frm else None},
        external_id=member.external_id,
    )


def set_sync_status(
    session: Session,
    conn: Connection,
    to: SyncStatus,
    *,
    now: datetime,
    actor: str,
    action: str | None = None,
    detail: dict[str, Any] | None = None,
    stamp: bool = False,
    event: str | None = None,
    event_data: dict[str, Any] | None = None,
) -> None:
    """Move the data pipeline's state of ``conn`` (its authorization status stays).

    With ``action``, the move is recorded as an audit event (``sync.retrieved``,
    ``connection.data_deleted`` …) when the state actually changes. ``stamp`` marks a change
    that is news about the connection itself (a finished deletion, not a sync's progress): it
    sets ``statusUpdated`` and the audit event carries the (unchanged) status as from and to.
    With ``event``, that event (:mod:`tether.events`) is recorded too, with ``event_data``.
    """
    previous = conn.sync_status
    conn.sync_status = to.value
    if stamp:
        conn.status_updated_at = now
    external_id = None  # the member's, once the audit has loaded it
    if action is not None and previous != to.value:
        status = Status(conn.status) if stamp else None
        member = audit(
            session,
            conn=conn,
            action=action,
            actor=actor,
            now=now,
            frm=status,
            to=status,
            detail=detail,
        )
        external_id = member.external_id
    if event is not None:
        events.record_for_connection(
            session, conn, event, now=now, extra=event_data, external_id=external_id
        )
