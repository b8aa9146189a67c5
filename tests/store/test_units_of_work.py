"""``Database.read()`` and ``write()``: what each unit of work promises, on both engines."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text, update

from tether.runtime import Runtime
from tether.store.db import ReadOnlySession
from tether.store.models import Tenant


def _tenants(runtime: Runtime) -> int:
    with runtime.db.read() as session:
        return session.scalar(select(func.count()).select_from(Tenant)) or 0


def test_a_read_refuses_writes_and_leaves_nothing_behind(runtime: Runtime) -> None:
    """On PostgreSQL a read runs in autocommit, so a write in one would commit at once:
    both engines refuse it before it reaches the database."""
    before = _tenants(runtime)
    with runtime.db.read() as session:
        session.add(Tenant(id="t-read-add", name="No", return_urls=[]))
        with pytest.raises(ReadOnlySession):
            session.flush()
    with runtime.db.read() as session, pytest.raises(ReadOnlySession):
        session.execute(update(Tenant).values(name="renamed"))
    assert _tenants(runtime) == before
    with runtime.db.write() as session:
        session.add(Tenant(id="t-write-add", name="Yes", return_urls=[]))
    assert _tenants(runtime) == before + 1


def test_a_read_on_postgresql_sends_no_begin(runtime: Runtime) -> None:
    """A PostgreSQL read is autocommit: no transaction is open while it runs (at READ
    COMMITTED a BEGIN bought no consistency, only two round trips). SQLite keeps its
    deferred transaction: one snapshot for the unit of work."""
    with runtime.db.read() as session:
        session.execute(text("SELECT 1"))
        if runtime.db.sqlite:
            assert session.connection().connection.dbapi_connection.in_transaction
        else:
            status = session.connection().connection.dbapi_connection.info.transaction_status
            assert status.name == "IDLE"
    with runtime.db.write() as session:
        session.execute(text("SELECT 1"))
        if not runtime.db.sqlite:
            status = session.connection().connection.dbapi_connection.info.transaction_status
            assert status.name == "INTRANS"
