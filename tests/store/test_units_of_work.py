"""``Database.read()`` and ``write()``: what each unit of work promises, on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from tests.sync.helpers import wait_for
from tether.runtime import Runtime
from tether.store.db import Database, ReadOnlySession, quiet
from tether.store.models import Tenant
from tether.store.sqlite import WAL_AUTOCHECKPOINT_BACKSTOP


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


def test_sqlite_checkpoints_off_the_commit_path(tmp_path: Path) -> None:
    """Commits no longer copy the WAL back at 1,000 pages (that was the tail of a large
    fleet's writes); the background checkpointer does, within a few passes, and stops with
    ``dispose()``."""
    path = tmp_path / "wal.db"
    writer = Database(f"sqlite:///{path}")
    assert writer.checkpointer is not None
    writer.checkpointer.stop()  # this one's writes alone: do commits checkpoint?
    with writer.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
            WAL_AUTOCHECKPOINT_BACKSTOP
        )
        conn.exec_driver_sql("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)")
        conn.commit()
    for _ in range(6):  # about 1,500 pages, in six commits
        with writer.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO blobs (b) VALUES " + ",".join(["(randomblob(4000))"] * 250)
            )
    # At SQLite's default a commit would have checkpointed at 1,000 pages and the next
    # one started the WAL over: it would hold no more than about 1,250.
    assert (tmp_path / "wal.db-wal").stat().st_size > 1_400 * 4096

    other = Database(f"sqlite:///{path}")
    checkpointer = other.checkpointer
    assert checkpointer is not None

    def caught_up() -> bool:
        last = checkpointer.last
        return last is not None and last[1] >= 1_400 and last[1] == last[2]

    try:
        wait_for(caught_up, timeout=10)
    finally:
        other.dispose()
        writer.dispose()
    checkpointer._thread.join(timeout=5)
    assert not checkpointer._thread.is_alive()


def test_a_pooled_connection_the_server_ended_is_replaced_without_an_error(
    postgres_database: str,
) -> None:
    """The pool asks the server (``SELECT 1``) only when a connection is not quiet
    (:func:`tether.store.db.quiet`). A backend ended by the server (a restart, an
    administrator, an idle timeout) has said so on its socket: the next unit of work gets a
    new connection instead of an error, and a healthy idle one is vouched for without a round
    trip."""
    db = Database(postgres_database, pool_size=1, max_overflow=0)
    other = Database(postgres_database)
    try:
        with db.read() as session:
            first = session.scalar(text("SELECT pg_backend_pid()"))
            dbapi = session.connection().connection.dbapi_connection
        assert quiet(dbapi)  # idle, nothing said: no ping needed
        with other.read() as session:
            assert session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        wait_for(lambda: not quiet(dbapi), timeout=5)
        with db.read() as session:
            second = session.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
        with db.write() as session:
            assert session.scalar(text("SELECT pg_backend_pid()")) == second
    finally:
        db.dispose()
        other.dispose()


def test_the_drivers_own_sqlite_errors_count_as_the_database_unavailable() -> None:
    """The sync's SQLite page writes run on the driver itself: its "database is locked" or
    "disk I/O error" is the database being unavailable, as SQLAlchemy's wrapping of it is."""
    import sqlite3

    from tether.store.db import database_unavailable

    assert database_unavailable(sqlite3.OperationalError("database is locked"))
    assert not database_unavailable(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not database_unavailable(ValueError("a bug"))
