"""The sync's writes: resources upserted in short transactions, each fenced by the grant epoch.

The fence is the heartbeat update itself: ``UPDATE connections SET sync_heartbeat_at=… WHERE
id=… AND grant_epoch=… AND status='CONNECTED'``. When it touches no row, the member disconnected,
deleted or re-authorized since the sync started, and the page is not written. The update holds
the connection row's lock until commit, so a disconnect that commits first is always seen, and
one that comes later waits for this page's transaction to finish. :func:`upsert_resources`
writes the rows of a batch of pages in one driver-level ``executemany``; :func:`resource_counts`
counts what the connection has stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from tether.domain import Status
from tether.errors import Fenced
from tether.store.models import Connection, FhirResource

# (type, id, meta.lastUpdated, the resource: parsed, or already its JSON text)
Row = tuple[str, str, str | None, dict[str, Any] | str]
_CONNECTIONS = cast(Table, Connection.__table__)


def fence(session: Session, connection_pk: int, epoch: int, now: datetime) -> None:
    """Renew the sync's heartbeat, or raise :class:`~tether.errors.Fenced` (see above)."""
    result = session.connection().execute(  # Core, not ORM: this runs for every write
        update(_CONNECTIONS)
        .where(
            _CONNECTIONS.c.id == connection_pk,
            _CONNECTIONS.c.grant_epoch == epoch,
            _CONNECTIONS.c.status == Status.CONNECTED.value,
        )
        .values(sync_heartbeat_at=now)
    )
    if result.rowcount != 1:
        raise Fenced()


# The hot path of every sync: one driver-level executemany per page, no ORM or Core row
# processing (measured: 18.5 µs a row through the ORM insert, 3.5 µs like this, SQLite).
_UPSERT = (
    "INSERT INTO fhir_resources (member_id, connection_id, resource_type, resource_id,"
    " last_updated, grant_epoch, data) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
    " ON CONFLICT (connection_id, resource_type, resource_id) DO UPDATE SET"
    " last_updated = excluded.last_updated, grant_epoch = excluded.grant_epoch,"
    " data = excluded.data"
)
_PLACEHOLDER = {"sqlite": "?", "postgresql": "%s"}


def upsert_resources(
    session: Session,
    *,
    member_id: str,
    connection_pk: int,
    epoch: int,
    rows: Sequence[Row],
) -> int:
    """Upsert ``(resource_type, id, lastUpdated, resource)`` rows; returns how many."""
    if not rows:
        return 0
    dumps = orjson.dumps
    values = [
        (
            member_id,
            connection_pk,
            rtype,
            rid,
            updated,
            epoch,
            resource if isinstance(resource, str) else dumps(resource).decode(),
        )
        for rtype, rid, updated, resource in rows
    ]
    dialect = session.get_bind().dialect.name
    sql = _UPSERT.format(p=_PLACEHOLDER[dialect])
    session.connection().exec_driver_sql(sql, values)
    return len(values)


def resource_counts(session: Session, connection_pk: int) -> dict[str, int]:
    """How many resources are stored for the connection, per type."""
    rows = session.execute(
        select(FhirResource.resource_type, func.count())
        .where(FhirResource.connection_id == connection_pk)
        .group_by(FhirResource.resource_type)
    )
    return {rtype: int(count) for rtype, count in rows}
