"""Authorization lifetime: the notice before a grant ends at its source.

Many sources end a grant after a fixed time (90 days to a year, sometimes the patient's
choice), whatever tether does; a refresh then answers ``invalid_grant`` and the connection
becomes EXPIRED. Where the source says when (``refresh_token_expires_in``) or the directory
does (``authorization_lifetime``), the connection keeps ``authorization_expires_at`` and
shows it as ``authorizationExpires``. :func:`notify_expiring` (the ``expiring-grants`` sweep)
writes ``connection.expiring`` once per grant, ``expiring_notice_days`` before that moment,
with an audit row in the same transaction, so the app can ask the member to reconnect in time.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tether import events
from tether.connections import lifecycle
from tether.domain import Status
from tether.runtime import Runtime
from tether.store.models import Connection

BATCH = 500  # connections noticed per transaction


def notify_expiring(runtime: Runtime) -> int:
    """Write ``connection.expiring`` for CONNECTED grants that end within the notice period
    and have not had it; returns how many."""
    now = runtime.clock()
    horizon = now + timedelta(days=runtime.settings.expiring_notice_days)
    noticed = 0
    while True:
        with runtime.db.write() as session:
            rows = session.scalars(
                select(Connection)
                .where(
                    Connection.status == Status.CONNECTED.value,
                    Connection.authorization_expires_at.is_not(None),
                    Connection.authorization_expires_at <= horizon,
                    # not yet noticed for this grant; spelled as the partial index's predicate
                    # (ix_connections_grant_end_unnoticed), which both engines must recognise
                    Connection.expiring_notice_epoch.is_distinct_from(Connection.grant_epoch),
                )
                .order_by(Connection.authorization_expires_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            for conn in rows:
                assert conn.authorization_expires_at is not None
                conn.expiring_notice_epoch = conn.grant_epoch
                expires = conn.authorization_expires_at
                lifecycle.audit(
                    session,
                    conn=conn,
                    action="connection.expiring",
                    actor="system:sweeper",
                    now=now,
                    detail={"authorization_expires": expires.isoformat()},
                )
                events.record_for_connection(session, conn, events.CONNECTION_EXPIRING, now=now)
        noticed += len(rows)
        if len(rows) < BATCH:
            return noticed
