"""The end of a sync run: what it amounts to, written back to the connection at once.

:func:`finish_sync` turns the run's :class:`~tether.sync.pipeline.Progress` into ``syncErrors``
(AUTHORIZATION_EXPIRED when the source stopped accepting the grant; then one error per failure
code, naming the type; INVALID_RESPONSE when resources for another patient were left out; and
PARTIAL_RETRIEVAL, first, naming the types missing when others came) and a ``syncStatus``
(RETRIEVED when at least one type came whole and the authorization held, else ERROR; an
expiry the token layer recorded meanwhile is kept). In one transaction it advances the
incremental cursor of each completed type, recounts the stored resources, ends the heartbeat,
schedules the next sync, records the status change (with an audit row when it changed), adds
the run to the sync history (:mod:`tether.sync.history`) and writes ``sync.completed`` or
``sync.failed`` (:mod:`tether.events`). Nothing is written when the grant epoch moved on
meanwhile: a run cut short by a disconnect, a deletion or a re-authorization leaves no history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tether import events
from tether.connections import lifecycle, schedule
from tether.connections.sync_errors import sync_error
from tether.connections.tokens import EXPIRED_CODE
from tether.domain import Status, SyncStatus
from tether.logging import get_logger
from tether.runtime import Runtime
from tether.store.models import Connection
from tether.sync import history
from tether.sync.claim import Claim
from tether.sync.fenced_writes import resource_counts
from tether.sync.pipeline import SOURCE_DOWN, WHOLE_SYNC, Progress
from tether.sync.scheduling import next_sync_at

log = get_logger("tether.sync")


@dataclass
class SyncReport:
    """What a finished sync run amounted to (as written to the connection)."""

    status: SyncStatus
    written: int  # resources written by this run (new or updated)
    errors: list[dict[str, object]]  # the syncErrors
    counts: dict[str, int]  # resources stored for the connection now, per type


def finish_sync(
    runtime: Runtime,
    *,
    claim: Claim,
    progress: Progress,
    degraded_backoff: float | None = None,
    trigger: str = "scheduled",
) -> SyncReport | None:
    """Write the run's outcome to the connection; None when its grant epoch moved on.

    ``degraded_backoff``: the source is down for everyone (:mod:`tether.connections.
    source_health`) and this run failed for that reason, so the connection keeps its data's
    status instead of ERROR, says SOURCE_UNAVAILABLE and retries after that many seconds."""
    now = runtime.clock()
    failed = progress.failed
    ok = [t for t in claim.types if t in progress.done and t not in failed]
    errors: list[dict[str, object]] = []
    codes_seen: set[str] = set()
    if progress.expired:
        errors.append(sync_error(EXPIRED_CODE))
        codes_seen.add(EXPIRED_CODE)
    for rtype, exc in failed.items():
        if exc.code not in codes_seen:
            codes_seen.add(exc.code)
            where = "" if rtype == WHOLE_SYNC else f" ({rtype})"
            errors.append(sync_error(exc.code, f"{exc}{where}"))
    foreign = progress.tally.foreign
    if foreign:
        errors.append(
            sync_error("INVALID_RESPONSE", f"{foreign} resources for another patient were ignored")
        )
    incomplete = [t for t in claim.types if t not in ok]
    if ok and incomplete:
        errors.insert(0, sync_error("PARTIAL_RETRIEVAL", "not retrieved: " + ", ".join(incomplete)))
    status = SyncStatus.RETRIEVED if ok and not progress.expired else SyncStatus.ERROR
    transient = any(e.code in SOURCE_DOWN for e in failed.values())
    # A run cut short by a failure of tether's own (its database full or gone, a bug) is
    # tried again soon, not a whole interval later: the source was not the problem.
    cut_short = WHOLE_SYNC in failed and failed[WHOLE_SYNC].code not in SOURCE_DOWN
    hold = degraded_backoff is not None and transient and status == SyncStatus.ERROR
    if hold:
        errors = [sync_error("SOURCE_UNAVAILABLE", "the source is down for everyone: retrying")]
    with runtime.db.write() as session:
        conn = session.get(Connection, claim.pk, with_for_update=True)
        if conn is None or conn.grant_epoch != claim.epoch:
            return None  # disconnected, deleted or re-authorized meanwhile
        # What this transaction reads and writes elsewhere comes before the connection's row
        # changes (the audit's read of the member, which flushes them, comes after the last):
        # the row is then written by one UPDATE, not one for each query that would flush it.
        counts = resource_counts(session, claim.pk)
        if conn.status == Status.CONNECTED:  # (one that left CONNECTED lost its schedule)
            schedule.set_due(
                session,
                conn.id,
                next_sync_at(
                    now,
                    interval=claim.interval,
                    retry_after=max(progress.retry_after or 0, degraded_backoff or 0) or None,
                    soon=transient or cut_short,
                ),
            )
        cursor = dict(conn.sync_cursor or {})
        newest = progress.tally.newest
        for rtype in ok:
            if rtype in newest:
                cursor[rtype] = max(cursor.get(rtype, ""), newest[rtype])
        conn.sync_cursor = cursor
        conn.resource_counts = counts
        conn.sync_heartbeat_at = None
        if ok:
            conn.last_synced_at = now
        if hold:
            status = SyncStatus.RETRIEVED if conn.last_synced_at else SyncStatus.PENDING
        # Keep an expiry error that the token layer recorded during this run.
        if conn.status == Status.EXPIRED and not progress.expired:
            errors = [sync_error(EXPIRED_CODE), *errors]
            status = SyncStatus.ERROR
        conn.sync_errors = errors
        changes = history.added_and_updated(claim.counts, counts, progress.written_by_type)
        # sync.completed / sync.failed; a sync held back because its source is down for
        # everyone is neither (its connection keeps its data's status).
        event = {
            SyncStatus.RETRIEVED: events.SYNC_COMPLETED,
            SyncStatus.ERROR: events.SYNC_FAILED,
        }.get(status)
        lifecycle.set_sync_status(
            session,
            conn,
            status,
            now=now,
            actor="system:sync",
            action=f"sync.{status.value.lower()}",
            detail={
                "written": progress.written,
                "errors": sorted(codes_seen),
                **_references(progress),
            },
            event=None if hold else event,
            event_data={"trigger": trigger, "resources": changes},
        )
        reader = progress.reader
        history.record_run(
            session,
            conn,
            trigger=trigger,
            started=claim.started,
            finished=now,
            outcome=status.value,
            counts=changes,
            pages=progress.pages,
            requests=reader.requests if reader else 0,
            retries=reader.retries if reader else 0,
            throttled_seconds=reader.throttled_seconds if reader else 0.0,
            errors=errors,
        )
    log.info(
        "sync finished",
        connection=claim.pk,
        status=status.value,
        written=progress.written,
        errors=sorted(codes_seen),
        **_references(progress),
    )
    return SyncReport(status=status, written=progress.written, errors=errors, counts=counts)


def _references(progress: Progress) -> dict[str, dict[str, int]]:
    """What the referenced-resources phase did, when it had anything to do (for the audit
    row and the log: a missing reference is recorded, not a sync error)."""
    counts = asdict(progress.referenced)
    return {"references": counts} if any(counts.values()) else {}
