"""Shared steps for sync tests: connect through the sandbox and read what was stored."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from tests.conftest import MemberCtx
from tether.runtime import Runtime
from tether.store.models import Connection, FhirResource
from tether.sync.checks import PreparedRow, stamped
from tether.testing.flow import connect


def connected(client, member: MemberCtx, runtime: Runtime, source: str, patient: str) -> Connection:
    result = connect(client, member.headers, source, patient=patient)
    assert result.status_code == "success"
    with runtime.db.read() as session:
        conn = session.scalar(
            select(Connection).where(
                Connection.member_id == member.member_id, Connection.data_source_id == source
            )
        )
    assert conn is not None
    return conn


def reload(runtime: Runtime, pk: int) -> Connection:
    with runtime.db.read() as session:
        conn = session.get(Connection, pk, options=[joinedload(Connection.schedule)])
    assert conn is not None
    return conn


def stored(runtime: Runtime, pk: int) -> dict[str, int]:
    with runtime.db.read() as session:
        rows = session.execute(
            select(FhirResource.resource_type, func.count())
            .where(FhirResource.connection_id == pk)
            .group_by(FhirResource.resource_type)
        )
        return {t: int(n) for t, n in rows}


def codes(conn: Connection) -> list[str]:
    return [e["coding"][0]["code"] for e in conn.sync_errors]


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def observations(prefix: str, count: int) -> list[PreparedRow]:
    """``count`` Observations (ids ``prefix-0``…), each with a code and a date, as rows."""
    return [
        stamped(
            "Observation",
            {
                "id": f"{prefix}-{i}",
                "code": {"coding": [{"system": "http://loinc.org", "code": f"{i}-1"}]},
                "effectiveDateTime": "2024-01-01T10:00:00Z",
            },
        )
        for i in range(count)
    ]
