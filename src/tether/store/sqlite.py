"""How tether opens a SQLite database: one place for the connection's settings.

:class:`~tether.store.db.Database` applies :func:`configure` to every connection of its
engine; the sync's store process (:mod:`tether.sync.store_child`), which writes without
SQLAlchemy, opens its one connection with :func:`connect`. Nothing here imports more than the
driver, so that process stays small.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

SQLITE_BUSY_TIMEOUT_MS = 15000
# Pages in the WAL past which a committing writer checkpoints itself (SQLite's default is
# 1,000): only when the background checkpointer has fallen behind. See WalCheckpointer.
WAL_AUTOCHECKPOINT_BACKSTOP = 10_000


def configure(dbapi_conn: Any) -> None:
    """The connection's settings: transactions begun by tether (``BEGIN IMMEDIATE`` for a
    write), the WAL, and how long a writer waits for the lock."""
    dbapi_conn.isolation_level = None  # the driver begins nothing: tether emits BEGIN
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Checkpoints run off the commit path (WalCheckpointer); this is only the backstop.
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_BACKSTOP}")
    cursor.close()


def connect(path: str) -> sqlite3.Connection:
    """A connection to the database file at ``path``, configured; ``OperationalError`` when
    there is no such file (``mode=rw``: never an empty database in its place)."""
    conn = sqlite3.connect(
        Path(path).resolve().as_uri() + "?mode=rw",
        uri=True,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    configure(conn)
    return conn


def database_file(url: str) -> str | None:
    """The file a SQLAlchemy URL's SQLite database lives in; None for another engine or an
    in-memory database."""
    from sqlalchemy.engine import make_url  # here: the store process never calls this

    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    return path
