"""The sync's writes: resources upserted in short transactions, each fenced by the grant epoch.

The fence is the heartbeat update itself: ``UPDATE connections SET sync_heartbeat_at=… WHERE
id=… AND grant_epoch=… AND status='CONNECTED'``. When it touches no row, the member disconnected,
deleted or re-authorized since the sync started, and the page is not written. The update holds
the connection row's lock until commit, so a disconnect that commits first is always seen, and
one that comes later waits for this page's transaction to finish. :func:`upsert_resources`
writes the new versions among a batch of pages' rows in one driver-level ``executemany``, with
their search values; :func:`resource_counts` counts what the connection has stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar, cast

from sqlalchemy import Connection as Connection_
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session

from tether.domain import Status
from tether.errors import Fenced
from tether.store.models import Connection, FhirResource, FhirSearchValue
from tether.sync.checks import STAMP_TAIL, PreparedRow

_T = TypeVar("_T")
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


# The hot path of every sync: driver-level executemany, no ORM or Core row processing
# (measured: 18.5 µs a row through the ORM insert, 3.5 µs like this, SQLite).
_UPSERT = (
    "INSERT INTO fhir_resources (member_id, connection_id, resource_type, resource_id,"
    " last_updated, grant_epoch, data, changed_at, content_hash)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
    " ON CONFLICT (connection_id, resource_type, resource_id) DO UPDATE SET"
    " last_updated = excluded.last_updated, grant_epoch = excluded.grant_epoch,"
    " data = excluded.data, changed_at = excluded.changed_at,"
    " content_hash = excluded.content_hash"
)
_VALUES = (
    "INSERT INTO fhir_search_values (resource_pk, member_id, resource_type, name, system,"
    " code, lo, hi) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
_PLACEHOLDER = {"sqlite": "?", "postgresql": "%s"}
_R = FhirResource
_V = cast(Table, FhirSearchValue.__table__)


def stamp(now: datetime) -> str:
    """The ``changed_at`` of a version stored at ``now``: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffff``
    (text order is time order; its ``meta.lastUpdated`` is this and ``Z``)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def upsert_resources(
    session: Session,
    *,
    member_id: str,
    connection_pk: int,
    epoch: int,
    rows: Sequence[PreparedRow],
    now: datetime,
) -> Counter[str]:
    """Store the rows' versions that are new to the connection; returns how many per type.

    A row whose digest matches the stored one is the version tether has: it is left alone
    (its ``meta.lastUpdated`` stays, so Bulk ``_since`` does not return it again). A new
    version gets ``now`` as its stamp and its search values replace the old ones.
    """
    written: Counter[str] = Counter()
    if not rows:
        return written
    connection = session.connection()
    by_type: dict[str, dict[str, PreparedRow]] = {}
    for row in rows:
        by_type.setdefault(row[0], {})[row[1]] = row  # a resource twice: the last one
    text = stamp(now)
    changed: list[PreparedRow] = []
    replaced: list[int] = []  # rows whose search values are replaced
    rebound: list[int] = []  # same version, fetched under a newer grant
    for rtype, group in by_type.items():
        stored = connection.execute(
            select(_R.id, _R.resource_id, _R.content_hash, _R.grant_epoch).where(
                _R.connection_id == connection_pk,
                _R.resource_type == rtype,
                _R.resource_id.in_(list(group)),
            )
        )
        have = {rid: (pk, digest, row_epoch) for pk, rid, digest, row_epoch in stored}
        for rid, row in group.items():
            old = have.get(rid)
            if old is None:
                changed.append(row)
            elif old[1] != row[4]:
                changed.append(row)
                replaced.append(old[0])
            elif old[2] != epoch:
                rebound.append(old[0])
    dialect = session.get_bind().dialect.name
    p = _PLACEHOLDER[dialect]
    for chunk in _chunks(replaced):
        connection.execute(delete(_V).where(_V.c.resource_pk.in_(chunk)))
    for chunk in _chunks(rebound):
        connection.execute(update(_R).where(_R.id.in_(chunk)).values(grant_epoch=epoch))
    if not changed:
        return written
    tail = text + "Z" + STAMP_TAIL
    connection.exec_driver_sql(
        _UPSERT.format(p=p),
        [
            (member_id, connection_pk, rtype, rid, updated, epoch, head + tail, text, digest)
            for rtype, rid, updated, head, digest, _ in changed
        ],
    )
    written.update(row[0] for row in changed)
    indexed = [row for row in changed if row[5]]
    if indexed:
        _write_values(connection, p, member_id, connection_pk, indexed)
    return written


def _write_values(
    connection: Connection_, p: str, member_id: str, connection_pk: int, rows: list[PreparedRow]
) -> None:
    values: list[tuple[int, str, str, str, str | None, str | None, str | None, str | None]] = []
    for rtype in {row[0] for row in rows}:
        of_type = {row[1]: row for row in rows if row[0] == rtype}
        for chunk in _chunks(list(of_type)):
            pks = connection.execute(
                select(_R.id, _R.resource_id).where(
                    _R.connection_id == connection_pk,
                    _R.resource_type == rtype,
                    _R.resource_id.in_(chunk),
                )
            )
            for pk, rid in pks:
                values.extend(
                    (pk, member_id, rtype, name, system, code, lo, hi)
                    for name, system, code, lo, hi in of_type[rid][5]
                )
    connection.exec_driver_sql(_VALUES.format(p=p), values)


def _chunks(items: list[_T], size: int = 1000) -> Iterator[list[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def resource_counts(session: Session, connection_pk: int) -> dict[str, int]:
    """How many resources are stored for the connection, per type."""
    rows = session.execute(
        select(FhirResource.resource_type, func.count())
        .where(FhirResource.connection_id == connection_pk)
        .group_by(FhirResource.resource_type)
    )
    return {rtype: int(count) for rtype, count in rows}
