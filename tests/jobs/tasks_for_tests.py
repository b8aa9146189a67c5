"""Work declared for every process, so a ``tether worker`` subprocess started with
``--import tests.jobs.tasks_for_tests`` runs what the test process enqueues."""

from __future__ import annotations

from sqlalchemy import func, select, text

from tether import jobs
from tether.runtime import Runtime
from tether.store.models import AuditEvent

AUDIT_TASK = "tests.audit"
RAN = "tests.ran"
SWEEP_REQUEST = "tests.sweep-request"
SWEPT = "tests.swept"


def count_audit(runtime: Runtime, marker: str, action: str = RAN) -> int:
    with runtime.db.read() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.tenant_id == marker, AuditEvent.action == action)
            )
            or 0
        )


def write_audit_once(runtime: Runtime, marker: str, action: str) -> bool:
    """Insert the (marker, action) audit event unless it exists: safe to run twice, even at
    the same time (SQLite's write transactions are serial; PostgreSQL takes a lock)."""
    with runtime.db.write() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"{marker}/{action}"}
            )
        found = session.scalar(
            select(AuditEvent.id).where(AuditEvent.tenant_id == marker, AuditEvent.action == action)
        )
        if found is None:
            session.add(AuditEvent(tenant_id=marker, action=action, actor="job", detail={}))
        return found is None


@jobs.task(AUDIT_TASK, retries=0)
def audit(runtime: Runtime, *, marker: str) -> None:
    write_audit_once(runtime, marker, RAN)


@jobs.sweep("tests.redrive")
def redrive(runtime: Runtime) -> int:
    """Answer every sweep request that has no answer yet: work the queue never carried."""
    with runtime.db.read() as session:
        requested = set(
            session.scalars(select(AuditEvent.tenant_id).where(AuditEvent.action == SWEEP_REQUEST))
        )
        if not requested:
            return 0
        answered = set(
            session.scalars(select(AuditEvent.tenant_id).where(AuditEvent.action == SWEPT))
        )
    return sum(write_audit_once(runtime, m, SWEPT) for m in sorted(requested - answered))
