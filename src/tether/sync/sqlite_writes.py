"""The sync's page writes on SQLite, at the driver: what a write sends, and nothing heavier.

:func:`write_sqlite` is a sync's whole fenced page write on SQLite: from a database thread
(:func:`~tether.sync.fenced_writes.write_rows`, on a pooled connection) and from the store
process (:mod:`tether.sync.store_child`, on a connection of its own);
:func:`~tether.sync.fenced_writes.upsert_resources` runs :func:`upsert_sqlite` inside a
:class:`~tether.store.db.Database` write. This module imports the driver, orjson and the
sync's row types only, so that process stays small (about 20 MB; 56 MB with SQLAlchemy and
tether's models).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import TypeVar

import orjson

from tether.errors import Fenced
from tether.sync.checks import STAMP_TAIL, PreparedRow

_T = TypeVar("_T")


def stamp(now: datetime) -> str:
    """The ``changed_at`` of a version stored at ``now``: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffff``
    (text order is time order; its ``meta.lastUpdated`` is this and ``Z``)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


@dataclass(frozen=True, slots=True)
class Batch:
    """What one upsert writes: one row per resource (by type and id), each version's JSON
    text its head, the stamp and ``tail``."""

    member_id: str
    connection_pk: int
    epoch: int
    rows: dict[tuple[str, str], PreparedRow]
    stamp: str  # changed_at
    tail: str

    @classmethod
    def of(
        cls,
        rows: Sequence[PreparedRow],
        *,
        member_id: str,
        connection_pk: int,
        epoch: int,
        now: datetime,
    ) -> Batch:
        by_key: dict[tuple[str, str], PreparedRow] = {}
        for row in rows:
            by_key[(row[0], row[1])] = row  # a resource twice in a batch: the last one
        text = stamp(now)
        return cls(member_id, connection_pk, epoch, by_key, text, text + "Z" + STAMP_TAIL)


# The fence (tether.sync.fenced_writes.fence) as SQL: SQLAlchemy stores a UTC datetime on
# SQLite as naive text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
_FENCE_SQLITE = (
    "UPDATE connections SET sync_heartbeat_at = ?"
    " WHERE id = ? AND grant_epoch = ? AND status = 'CONNECTED'"
)


def write_sqlite(
    connection: sqlite3.Connection,
    *,
    connection_pk: int,
    epoch: int,
    member_id: str,
    rows: Sequence[PreparedRow],
    clock: Callable[[], datetime],
) -> Counter[str]:
    """SQLite's :func:`~tether.sync.fenced_writes.write_rows` (from a database thread or the
    store process), on a driver connection of tether's settings (:func:`tether.store.sqlite.
    configure`) outside any transaction: one ``BEGIN IMMEDIATE`` transaction, fenced, stamped
    inside it; raises :class:`~tether.errors.Fenced` (nothing written)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        now = clock()
        heartbeat = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        fenced = connection.execute(_FENCE_SQLITE, (heartbeat, connection_pk, epoch))
        if fenced.rowcount != 1:
            raise Fenced()
        written = (
            upsert_sqlite(
                connection,
                Batch.of(
                    rows, member_id=member_id, connection_pk=connection_pk, epoch=epoch, now=now
                ),
            )
            if rows
            else Counter()
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return written


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


def upsert_sqlite(connection: sqlite3.Connection, batch: Batch) -> Counter[str]:
    """SQLite's :func:`~tether.sync.fenced_writes.upsert_resources`, on the driver's
    connection (inside a write transaction): four statements a batch at most, none stepping
    per row (see above)."""
    member_id, connection_pk, epoch = batch.member_id, batch.connection_pk, batch.epoch
    tail, text, rows = batch.tail, batch.stamp, list(batch.rows.values())
    keys = orjson.dumps([(rtype, rid, digest) for rtype, rid, _, _, digest, _ in rows])
    (changed_json,) = connection.execute(
        _CHANGED_SQLITE, (keys.decode(), connection_pk, epoch)
    ).fetchone()
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
        connection.execute(_upsert_sql(len(chunk)), _flat(chunk))
    replaced = [pk for _, pk in changed if pk is not None]  # a new row has nothing to delete
    if replaced:
        connection.execute(_VALUES_DELETE_SQLITE, (orjson.dumps(replaced).decode(),))
    values = [(rtype, rid, found) for rtype, rid, _, _, _, found in chosen if found]
    if values:
        connection.execute(
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
