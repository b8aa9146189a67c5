"""The sync's writes: resources upserted in short transactions, each fenced by the grant epoch.

The fence is the heartbeat update itself: ``UPDATE connections SET sync_heartbeat_at=… WHERE
id=… AND grant_epoch=… AND status='CONNECTED'``. When it touches no row, the member disconnected,
deleted or re-authorized since the sync started, and the page is not written. The update holds
the connection row's lock until commit, so a disconnect that commits first is always seen, and
one that comes later waits for this page's transaction to finish. :func:`upsert_resources`
writes the new versions among a batch of pages' rows, with their search values, in a few
driver-level statements whatever the batch's size; :func:`resource_counts` counts what the
connection has stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import Connection as Connection_
from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from tether.domain import Status
from tether.errors import Fenced
from tether.store.models import Connection, FhirResource
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


# The hot path of every sync: driver-level statements, no ORM or Core row processing, and a
# fixed number of statements a batch whatever its size. The upsert skips, in SQL, a row whose
# version the database already has (same digest, same grant); a new version's search values
# replace the old ones (a version with none leaves none behind).
#
# PostgreSQL: the batch as one JSON parameter (orjson writes it in C) that
# ``json_to_recordset`` turns back into rows, and RETURNING names the rows written. Measured
# against psycopg's pipelined ``executemany`` (one prepared execution per row), 30,000
# resources in pages of 50, 2026-12-05: the writing process's CPU 0.93-0.97 s against
# 1.44-1.48 s (the pages' preparation, the same in both, included), PostgreSQL's 1.55 against
# 1.83-1.88 s. The search values go by COPY (33,000 values in 0.39 s against 0.58 s
# pipelined, 2026-12-04).
_UPSERT_PG = (
    "INSERT INTO fhir_resources (member_id, connection_id, resource_type, resource_id,"
    " last_updated, grant_epoch, data, changed_at, content_hash)"
    " SELECT %s, %s, r.t, r.i, r.u, %s, r.d, %s, r.h"
    " FROM json_to_recordset(%s::json) AS r(t text, i text, u text, d text, h text)"
    " ON CONFLICT (connection_id, resource_type, resource_id) DO UPDATE SET"
    " last_updated = excluded.last_updated, grant_epoch = excluded.grant_epoch,"
    " data = excluded.data, changed_at = excluded.changed_at,"
    " content_hash = excluded.content_hash"
    " WHERE fhir_resources.content_hash IS DISTINCT FROM excluded.content_hash"
    " OR fhir_resources.grant_epoch <> excluded.grant_epoch"
    " RETURNING id, resource_type, resource_id"
)
_VALUES_DELETE_PG = "DELETE FROM fhir_search_values WHERE resource_pk = ANY(%s)"
_VALUES_COPY = (
    "COPY fhir_search_values (resource_pk, member_id, resource_type, name, system, code, lo, hi)"
    " FROM STDIN"
)
# SQLite: no statement steps once per row. The driver gives the GIL up around every step (each
# row a RETURNING or a SELECT hands back) and has to win it back; beside a thread busy with
# Python (the sync preparing its next pages) each of those waits up to the interpreter's
# switch interval (5 ms), so a write that stepped once per stored row (RETURNING) crawled
# beside it: 100,000 resources stored in 2.6 s alone took 64 s beside a busy thread, and
# about 9 s with the statements below (2026-12-05, docs/benchmarks.md "Sync"). So the rows to
# write are found first, in one row (the write lock is held from the transaction's start, so
# they are the rows the upsert then writes), and their search values join the stored rows
# in SQL. A batch is four statements at most (the upsert one more for every 3,333 rows past
# the first), whatever its size; the keys and search values travel as one JSON parameter each,
# the rows as multi-row VALUES (binding them costs less than SQLite reading the resources'
# text back out of a JSON document).
_CHANGED_SQLITE = (  # the batch's rows not stored as they are: [[their index, stored id], ...]
    "SELECT json_group_array(json_array(r.key, f.id)) FROM json_each(?) AS r"
    " LEFT JOIN fhir_resources AS f ON f.connection_id = ?"
    " AND f.resource_type = json_extract(r.value, '$[0]')"
    " AND f.resource_id = json_extract(r.value, '$[1]')"
    " WHERE f.id IS NULL OR f.content_hash IS NOT json_extract(r.value, '$[2]')"
    " OR f.grant_epoch <> ?"
)
_UPSERT_HEAD = (
    "INSERT INTO fhir_resources (member_id, connection_id, resource_type, resource_id,"
    " last_updated, grant_epoch, data, changed_at, content_hash) VALUES "
)
_UPSERT_TAIL = (
    " ON CONFLICT (connection_id, resource_type, resource_id) DO UPDATE SET"
    " last_updated = excluded.last_updated, grant_epoch = excluded.grant_epoch,"
    " data = excluded.data, changed_at = excluded.changed_at,"
    " content_hash = excluded.content_hash"
    " WHERE fhir_resources.content_hash IS NOT excluded.content_hash"
    " OR fhir_resources.grant_epoch <> excluded.grant_epoch"
)
_VALUES_DELETE_SQLITE = (
    "DELETE FROM fhir_search_values WHERE resource_pk IN (SELECT value FROM json_each(?))"
)
_VALUES_SQLITE = (  # [[type, id, [[name, system, code, lo, hi], ...]], ...]
    "INSERT INTO fhir_search_values (resource_pk, member_id, resource_type, name, system,"
    " code, lo, hi)"
    " SELECT f.id, ?, f.resource_type, json_extract(v.value, '$[0]'),"
    " json_extract(v.value, '$[1]'), json_extract(v.value, '$[2]'),"
    " json_extract(v.value, '$[3]'), json_extract(v.value, '$[4]')"
    " FROM json_each(?) AS r CROSS JOIN fhir_resources AS f"  # CROSS: the batch outermost
    " CROSS JOIN json_each(r.value, '$[2]') AS v WHERE f.connection_id = ?"
    " AND f.resource_type = json_extract(r.value, '$[0]')"
    " AND f.resource_id = json_extract(r.value, '$[1]')"
)
MAX_PARAMS = 30_000  # per statement: under SQLite's 32,766


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

    A row whose digest matches the stored one (under the same grant) is the version tether
    has: it is left alone (its ``meta.lastUpdated`` stays, so Bulk ``_since`` does not return
    it again). A new version gets ``now`` as its stamp and its search values replace the old.
    """
    written: Counter[str] = Counter()
    if not rows:
        return written
    by_key: dict[tuple[str, str], PreparedRow] = {}
    for row in rows:
        by_key[(row[0], row[1])] = row  # a resource twice in a batch: the last one
    text = stamp(now)
    batch = _Batch(
        member_id=member_id,
        connection_pk=connection_pk,
        epoch=epoch,
        rows=by_key,
        stamp=text,
        tail=text + "Z" + STAMP_TAIL,
    )
    if session.get_bind().dialect.name == "postgresql":
        return _upsert_postgresql(session.connection(), batch)
    return _upsert_sqlite(session.connection(), batch)


@dataclass(frozen=True, slots=True)
class _Batch:
    """What one :func:`upsert_resources` call writes: one row per resource (by type and id),
    each version's JSON text its head, the stamp and ``tail``."""

    member_id: str
    connection_pk: int
    epoch: int
    rows: dict[tuple[str, str], PreparedRow]
    stamp: str  # changed_at
    tail: str


def _upsert_postgresql(connection: Connection_, batch: _Batch) -> Counter[str]:
    """PostgreSQL's :func:`upsert_resources`: one upsert, one delete and one COPY a batch."""
    tail = batch.tail
    document = orjson.dumps(
        [
            {"t": rtype, "i": rid, "u": updated, "d": head + tail, "h": digest}
            for rtype, rid, updated, head, digest, _ in batch.rows.values()
        ]
    ).decode()
    stored = connection.exec_driver_sql(
        _UPSERT_PG, (batch.member_id, batch.connection_pk, batch.epoch, batch.stamp, document)
    ).all()
    written = Counter(rtype for _, rtype, _ in stored)
    if not stored:
        return written
    # RETURNING does not tell a new row from an updated one: a new row has nothing to delete.
    connection.exec_driver_sql(_VALUES_DELETE_PG, ([pk for pk, _, _ in stored],))
    values = [
        (pk, batch.member_id, rtype, name, system, code, lo, hi)
        for pk, rtype, rid in stored
        for name, system, code, lo, hi in batch.rows[(rtype, rid)][5]
    ]
    if values:  # COPY: a few times faster than one INSERT per value
        cursor: Any = connection.connection.cursor()
        try:
            with cursor.copy(_VALUES_COPY) as copy:
                for value in values:
                    copy.write_row(value)
        finally:
            cursor.close()
    return written


def _upsert_sqlite(connection: Connection_, batch: _Batch) -> Counter[str]:
    """SQLite's :func:`upsert_resources`: four statements a batch at most, none stepping per
    row (see above)."""
    member_id, connection_pk, epoch = batch.member_id, batch.connection_pk, batch.epoch
    tail, text, rows = batch.tail, batch.stamp, list(batch.rows.values())
    keys = orjson.dumps([(rtype, rid, digest) for rtype, rid, _, _, digest, _ in rows])
    changed_json = connection.exec_driver_sql(
        _CHANGED_SQLITE, (keys.decode(), connection_pk, epoch)
    ).scalar_one()
    changed: list[tuple[int, int | None]] = orjson.loads(changed_json)
    chosen = [rows[index] for index, _ in changed]
    written = Counter(row[0] for row in chosen)
    if not chosen:
        return written
    params = [
        (member_id, connection_pk, rtype, rid, updated, epoch, head + tail, text, digest)
        for rtype, rid, updated, head, digest, _ in chosen
    ]
    for chunk in _chunks(params, MAX_PARAMS // 9):
        connection.exec_driver_sql(_upsert_sql(len(chunk)), _flat(chunk))
    replaced = [pk for _, pk in changed if pk is not None]  # a new row has nothing to delete
    if replaced:
        connection.exec_driver_sql(_VALUES_DELETE_SQLITE, (orjson.dumps(replaced).decode(),))
    values = [(rtype, rid, found) for rtype, rid, _, _, _, found in chosen if found]
    if values:
        connection.exec_driver_sql(
            _VALUES_SQLITE, (member_id, orjson.dumps(values).decode(), connection_pk)
        )
    return written


@lru_cache(maxsize=32)
def _upsert_sql(count: int) -> str:
    return _UPSERT_HEAD + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * count) + _UPSERT_TAIL


def _flat(rows: Sequence[Sequence[object]]) -> tuple[object, ...]:
    return tuple(chain.from_iterable(rows))


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
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
