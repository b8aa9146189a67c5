"""How the database runs what a block of code sends: the statements captured at the driver,
then ``EXPLAIN``-ed (``EXPLAIN QUERY PLAN`` on SQLite). For the scale benchmark and the tests
that pin a query to its index."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

_SQLITE_SCAN = re.compile(r"^SCAN (\w+)(?! USING)")  # a table walked without an index
_PG_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
_EXPLAINED = ("SELECT", "UPDATE", "DELETE", "WITH")


@dataclass
class Plan:
    sql: str
    lines: list[str]
    full_scans: list[str]  # tables read whole

    def uses(self, index: str) -> bool:
        return any(re.search(rf"\b{re.escape(index)}\b", line) for line in self.lines)


@dataclass
class Captured:
    statements: list[tuple[str, Any]] = field(default_factory=list)


@contextmanager
def captured_sql(engine: Engine) -> Iterator[Captured]:
    """Every statement ``engine`` sends inside the block, with its parameters."""
    captured = Captured()

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield captured
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def explain(engine: Engine, captured: Captured, *, prefer_indexes: bool = False) -> list[Plan]:
    """The plan of each captured read, update or delete (inserts and transaction control are
    left out). ``prefer_indexes`` makes PostgreSQL's sequential scans a last resort, so a plan
    on a small test table says whether an index *can* serve the query (a partial index only
    can when the query implies its predicate)."""
    sqlite = engine.dialect.name == "sqlite"
    plans = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if prefer_indexes and not sqlite:
            cursor.execute("SET enable_seqscan = off")
        for statement, parameters in captured.statements:
            if statement.lstrip().split(None, 1)[0].upper() not in _EXPLAINED:
                continue
            cursor.execute(
                ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters
            )
            if sqlite:
                lines = [str(row[-1]) for row in cursor.fetchall()]
                full = [m.group(1) for line in lines if (m := _SQLITE_SCAN.match(line.strip()))]
            else:
                lines = [str(row[0]) for row in cursor.fetchall()]
                full = [m.group(1) for line in lines if (m := _PG_SEQ_SCAN.search(line))]
            plans.append(Plan(" ".join(statement.split()), lines, sorted(set(full))))
        raw.rollback()
    finally:
        if prefer_indexes and not sqlite:
            raw.cursor().execute("RESET enable_seqscan")
            raw.commit()
        raw.close()
    return plans
