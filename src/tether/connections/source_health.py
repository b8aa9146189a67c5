"""Source health: what every process saw of each data source, summed in the database.

Each process counts its requests to sources in :data:`tether.metrics.SOURCE_TALLY` (per source
and minute: requests, failures — 5xx, timeouts, network errors —, 429s, 401/403s, token
endpoint failures; the last success and failure; how long a 429 asked to wait; which
connections' syncs failed because the source was down). :func:`flush` adds that to the
``source_stats`` minutes and the ``source_health`` row, after a sync whose source was down,
otherwise at most every ``FLUSH_INTERVAL`` seconds, and from the ``source-health`` sweep.

**Degraded** means the source fails for everyone, not for one grant: of the connections whose
latest sync of it ended in the last ``DEGRADED_WINDOW``, at least ``DEGRADED_MIN_CONNECTIONS``
failed because the source was down (5xx, timeouts, network errors), and they are at least
``DEGRADED_FAILURE_RATE`` of them. While a
source is degraded, a sync that fails for that reason does not move its connection to
``ERROR``: the connection keeps ``RETRIEVED`` (or ``PENDING`` before its first data), its
``syncErrors`` say ``SOURCE_UNAVAILABLE``, and it retries with a backoff that grows with the
outage (:func:`backoff_seconds`).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from tether.errors import NotFound
from tether.metrics import SOURCE_TALLY, SourceMarks, SourceMinute
from tether.runtime import Runtime
from tether.store.db import upsert_insert
from tether.store.models import DataSource, SourceHealthRow, SourceStat, SourceSync

WINDOW = timedelta(hours=1)
DEGRADED_WINDOW = timedelta(minutes=10)
DEGRADED_MIN_CONNECTIONS = 3
DEGRADED_FAILURE_RATE = 0.5
KEEP = timedelta(days=1)
FLUSH_INTERVAL = 10.0  # seconds between flushes after syncs that went well
BACKOFF_MIN = 60.0
BACKOFF_MAX = 3600.0

_last_flush = 0.0
_flush_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One data source's health as every process saw it."""

    data_source_id: str
    status: str  # ok | degraded | unknown (no request in the last hour)
    degraded_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    throttled_until: datetime | None  # set while a 429's Retry-After is still running
    requests_last_hour: int
    failures_last_hour: int
    error_rate_last_hour: float | None
    throttled_last_hour: int
    refused_last_hour: int
    token_failures_last_hour: int
    failing_connections: int  # connections whose last sync failed because the source was down


def _at(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def flush(runtime: Runtime, *, force: bool = True) -> int:
    """Add this process's tally to the database; the number of sources written. Without
    ``force``, does nothing when the last flush is under ``FLUSH_INTERVAL`` seconds old."""
    global _last_flush
    with _flush_lock:
        if not force and time.monotonic() - _last_flush < FLUSH_INTERVAL:
            return 0
        _last_flush = time.monotonic()
    minutes, marks = SOURCE_TALLY.drain()
    touched = {source for source, _ in minutes} | set(marks)
    now = runtime.clock()
    with runtime.db.write() as session:
        if minutes:
            _add_minutes(session, minutes)
        for source, mark in marks.items():
            _apply_marks(session, source, mark)
        degraded_before = set(
            session.scalars(
                select(SourceHealthRow.data_source_id).where(
                    SourceHealthRow.degraded_since.is_not(None)
                )
            )
        )
        for source in touched | degraded_before:
            _judge(session, source, now)
        session.execute(delete(SourceStat).where(SourceStat.minute < now - KEEP))
        session.execute(delete(SourceSync).where(SourceSync.ended_at < now - KEEP))
    return len(touched)


def _add_minutes(session: Session, minutes: dict[tuple[str, int], SourceMinute]) -> None:
    rows = [
        {
            "data_source_id": source,
            "minute": datetime.fromtimestamp(start, UTC),
            "requests": m.requests,
            "failures": m.failures,
            "throttled": m.throttled,
            "refused": m.refused,
            "token_failures": m.token_failures,
        }
        for (source, start), m in sorted(minutes.items())
    ]
    statement = upsert_insert(session, SourceStat)
    counted = ("requests", "failures", "throttled", "refused", "token_failures")
    statement = statement.on_conflict_do_update(
        index_elements=["data_source_id", "minute"],
        set_={c: getattr(SourceStat, c) + getattr(statement.excluded, c) for c in counted},
    )
    session.execute(statement, rows)


def _row(session: Session, source: str) -> SourceHealthRow:
    row = session.get(SourceHealthRow, source, with_for_update=True)
    if row is None:
        row = SourceHealthRow(data_source_id=source)
        session.add(row)
        session.flush()
    return row


def _apply_marks(session: Session, source: str, mark: SourceMarks) -> None:
    row = _row(session, source)
    row.last_success_at = _later(row.last_success_at, _at(mark.last_success))
    row.last_failure_at = _later(row.last_failure_at, _at(mark.last_failure))
    row.throttled_until = _later(row.throttled_until, _at(mark.throttled_until))
    for connection_pk, (when, down) in sorted(mark.syncs.items()):
        ended = _at(when)
        assert ended is not None
        latest = session.get(SourceSync, (source, connection_pk))
        if latest is None:
            session.add(
                SourceSync(
                    data_source_id=source,
                    connection_id=connection_pk,
                    ended_at=ended,
                    source_down=down,
                )
            )
        elif ended >= latest.ended_at:
            latest.ended_at, latest.source_down = ended, down


def _totals(session: Session, source: str, since: datetime) -> tuple[int, ...]:
    row = session.execute(
        select(
            func.coalesce(func.sum(SourceStat.requests), 0),
            func.coalesce(func.sum(SourceStat.failures), 0),
            func.coalesce(func.sum(SourceStat.throttled), 0),
            func.coalesce(func.sum(SourceStat.refused), 0),
            func.coalesce(func.sum(SourceStat.token_failures), 0),
        ).where(SourceStat.data_source_id == source, SourceStat.minute >= since)
    ).one()
    return tuple(int(v) for v in row)


def _syncs(session: Session, source: str, since: datetime) -> tuple[int, int]:
    """Of the connections whose latest sync ended since ``since``: (failed, all)."""
    failed, total = session.execute(
        select(
            func.coalesce(func.sum(case((SourceSync.source_down, 1), else_=0)), 0),
            func.count(),
        ).where(SourceSync.data_source_id == source, SourceSync.ended_at >= since)
    ).one()
    return int(failed), int(total)


def _degraded_now(session: Session, source: str, now: datetime) -> bool:
    failed, total = _syncs(session, source, now - DEGRADED_WINDOW)
    return failed >= DEGRADED_MIN_CONNECTIONS and failed >= DEGRADED_FAILURE_RATE * total


def _judge(session: Session, source: str, now: datetime) -> None:
    row = _row(session, source)
    if _degraded_now(session, source, now):
        row.degraded_since = row.degraded_since or now
    else:
        row.degraded_since = None


def degraded_since(runtime: Runtime, *, source_id: str) -> datetime | None:
    """Since when ``source_id`` is degraded (None: it is not)."""
    with runtime.db.read() as session:
        row = session.get(SourceHealthRow, source_id)
        return row.degraded_since if row is not None else None


def backoff_seconds(since: datetime, now: datetime) -> float:
    """How long a connection of a degraded source waits before its next try: as long as the
    outage has lasted, between ``BACKOFF_MIN`` and ``BACKOFF_MAX``, with ±20 % jitter so the
    connections do not all come back at once."""
    lasted = (now - since).total_seconds()
    base = min(max(lasted, BACKOFF_MIN), BACKOFF_MAX)
    return base * random.uniform(0.8, 1.2)


def source_health(runtime: Runtime, *, source_id: str) -> SourceHealth:
    """``GET /v1/data-sources/{id}/health``: the source's health now."""
    flush(runtime, force=False)
    now = runtime.clock()
    with runtime.db.read() as session:
        if session.get(DataSource, source_id) is None:
            raise NotFound(f"no data source {source_id!r}", code="UNKNOWN_DATA_SOURCE")
        return _health(session, source_id, now)


def every_source_health(runtime: Runtime) -> list[SourceHealth]:
    """Every data source's health, in id order (this process's counts flushed once first)."""
    flush(runtime)
    now = runtime.clock()
    with runtime.db.read() as session:
        ids = session.scalars(select(DataSource.id).order_by(DataSource.id)).all()
        return [_health(session, source_id, now) for source_id in ids]


def _health(session: Session, source_id: str, now: datetime) -> SourceHealth:
    row = session.get(SourceHealthRow, source_id)
    hour = (now - WINDOW).replace(second=0, microsecond=0)
    requests, failures, throttled, refused, token_failures = _totals(session, source_id, hour)
    failing, _ = _syncs(session, source_id, now - DEGRADED_WINDOW)
    degraded = row.degraded_since if row is not None else None
    throttled_until = row.throttled_until if row is not None else None
    if degraded is not None:
        status = "degraded"
    elif requests == 0:
        status = "unknown"
    else:
        status = "ok"
    return SourceHealth(
        data_source_id=source_id,
        status=status,
        degraded_since=degraded,
        last_success_at=row.last_success_at if row is not None else None,
        last_failure_at=row.last_failure_at if row is not None else None,
        throttled_until=throttled_until if throttled_until and throttled_until > now else None,
        requests_last_hour=requests,
        failures_last_hour=failures,
        error_rate_last_hour=round(failures / requests, 4) if requests else None,
        throttled_last_hour=throttled,
        refused_last_hour=refused,
        token_failures_last_hour=token_failures,
        failing_connections=failing,
    )
