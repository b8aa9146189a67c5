"""Engines and units of work for SQLite (embedded default) and PostgreSQL (scale).

SQLite runs in WAL mode with a busy timeout and foreign keys on. Its write transactions start
with ``BEGIN IMMEDIATE`` so that two writers queue on the busy timeout instead of failing when
one upgrades a read lock; read-only units of work use a deferred ``BEGIN`` and never block.
On PostgreSQL read-only units of work run in autocommit (see :class:`Database`); both engines
refuse an ORM write in one.
"""

from __future__ import annotations

import select
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, any_, bindparam, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from tether import tracing
from tether.logging import get_logger
from tether.store import sqlite as sqlite_settings
from tether.store.sqlite import SQLITE_BUSY_TIMEOUT_MS

log = get_logger("tether.store")

CHECKPOINT_EVERY = 1.0  # seconds between the background checkpointer's passes


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be used right now (the server is gone or
    restarting, a connection was cut, the pool is exhausted, SQLite's disk is full or its
    file locked past the busy timeout), rather than a bug: the request may succeed later."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    # The sync's SQLite page writes run on the driver itself (tether.sync.sqlite_writes).
    return isinstance(
        exc, sa_exc.TimeoutError | sa_exc.DisconnectionError | sqlite3.OperationalError
    )


def upsert_insert(session: Session, table: Any) -> Any:
    """``INSERT`` into ``table`` in the session's dialect, which has ``ON CONFLICT`` (both
    engines spell it alike, but SQLAlchemy builds it per dialect)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def among(session: Session, column: Any, keys: Sequence[int]) -> Any:
    """``column IN keys`` for a batch of integer keys (a claim's 100). PostgreSQL gets one
    array parameter, ``= ANY(:keys)``: the statement's text is the same whatever the count,
    where an IN list is rendered anew by SQLAlchemy, and parsed anew by psycopg (which caches
    no statement of more than 50 parameters), on every call. SQLite keeps the IN list."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(keys), type_=postgresql.ARRAY(column.type)))
    return column.in_(keys)


# The DB-API parameter marker of each driver, for the few statements tether sends to the driver
# itself (bulk writes and export reads that skip SQLAlchemy's per-row work).
PARAM_MARKER = {"sqlite": "?", "postgresql": "%s"}


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with tether's per-backend settings.

    JSON columns are read with orjson (views of a tenant's connections decode two per row;
    about 4 times faster than the standard library's). They are still written by ``json``,
    whose ``", "`` and ``": "`` spacing the sync-error filter matches
    (:func:`tether.connections.queries.tenant_connection_rows`)."""
    kwargs.setdefault("json_deserializer", orjson.loads)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    _ping_only_when_in_doubt(engine)
    return engine


def quiet(dbapi_connection: Any) -> bool:
    """Whether a pooled PostgreSQL connection looks alive without asking the server: psycopg
    has not seen it break, and its socket has nothing to read. A server says nothing between
    answers unless it is ending the session: a restart, ``pg_terminate_backend``, an idle
    timeout or a proxy's close leave a FATAL message or end-of-file to read."""
    try:
        if dbapi_connection.closed or dbapi_connection.broken:
            return False
        fd = dbapi_connection.fileno()
    except Exception:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


def _ping_only_when_in_doubt(engine: Engine) -> None:
    """The pool's pre-ping (``SELECT 1``, a round trip on every checkout: one per unit of
    work, up to a third of a short one's) asks the server only when :func:`quiet` cannot
    vouch for the connection. A connection lost without a word (a network partition) still
    fails its first statement, as it would have failed the ping: SQLAlchemy then drops the
    pool's connections and the next unit of work connects anew."""
    dialect = engine.dialect
    ping = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        return quiet(dbapi_connection) or ping(dbapi_connection)

    dialect.do_ping = do_ping  # type: ignore[method-assign]


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        sqlite_settings.configure(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("tether_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")


class WalCheckpointer:
    """Copies a SQLite database's WAL into its file from a thread of its own, every
    :data:`CHECKPOINT_EVERY` seconds, so no writer's commit does it.

    SQLite's default has the transaction that takes the WAL past 1,000 pages copy them back
    itself, random writes into the file before its commit returns: that was the tail of a
    million-member fleet's writes (a due-syncs claim at 300,000 members: p99 5.8 ms with it,
    2.7 ms without; ``python -m bench scale``). The pass is ``PASSIVE``: it never waits for,
    nor blocks, readers or writers. Commits still checkpoint past
    :data:`~tether.store.sqlite.WAL_AUTOCHECKPOINT_BACKSTOP` pages, should this thread fall
    behind or be gone.

    Holds no reference to its :class:`Database`: it stops with ``dispose()``, or when the
    database object is collected."""

    def __init__(self, path: str) -> None:
        # mode=rw: never create a file that is not there (the URI percent-encodes the path)
        self._uri = Path(path).resolve().as_uri() + "?mode=rw"
        self._stop = threading.Event()
        self.last: tuple[int, int, int] | None = None  # (busy, WAL frames, checkpointed)
        self._thread = threading.Thread(target=self._run, name="tether-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        failed = False
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, timeout=0)
                    busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.last = (busy, frames, done)
                    failed = False
                except sqlite3.Error as exc:
                    # Gone, replaced or locked for now: open it afresh next time. Meanwhile
                    # the commits' backstop bounds the WAL.
                    if not failed:
                        log.warning("sqlite.checkpoint_failed", error=str(exc))
                    failed = True
                    if conn is not None:
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class ReadOnlySession(RuntimeError):
    """A write was attempted in a ``Database.read()`` unit of work (a bug: use ``write()``)."""


def _read_only(session: Session, *_: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlySession("Database.read() is read-only: write in Database.write()")


def _read_only_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySession("Database.read() is read-only: write in Database.write()")


class Database:
    """The engine plus two kinds of unit of work: ``write()`` and ``read()``."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self._write = sessionmaker(
            bind=self.engine.execution_options(tether_write=True), expire_on_commit=False
        )
        # PostgreSQL reads run in autocommit: at READ COMMITTED every statement takes its own
        # snapshot whether or not a transaction wraps them, so the BEGIN and ROLLBACK were two
        # round trips per read that bought nothing (a third of an authenticated request's).
        # SQLite keeps its deferred BEGIN: there it is one snapshot for the unit of work.
        self._read = sessionmaker(
            bind=self.engine
            if self.sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
        )
        event.listen(self._read, "before_flush", _read_only)
        event.listen(self._read, "do_orm_execute", _read_only_statement)
        database = self.engine.url.database
        self.checkpointer = (
            WalCheckpointer(database)
            if self.sqlite and database and database != ":memory:"
            else None
        )
        if self.checkpointer is not None:
            weakref.finalize(self, self.checkpointer.stop)
        # Called with a write session's ``info`` after it committed (never after a rollback):
        # how work that must not start before the commit (a webhook delivery) is started.
        self.after_commit: list[Callable[[dict[str, Any]], None]] = []

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that commits on success and rolls back on any error."""
        with (
            tracing.span("db.write", attributes={"db.system": self.engine.dialect.name}),
            self._write() as session,
        ):
            with session.begin():
                yield session
            if session.info:
                for hook in self.after_commit:
                    hook(session.info)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work. Never write in one: ORM writes are refused, and any other
        (raw SQL) would commit at once on PostgreSQL, where each statement runs on its own.
        Closing it ends SQLite's transaction; the objects it loaded stay usable (detached, not
        expired)."""
        with self._read() as session:
            yield session

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
