"""Alembic environment: the engine comes from tether (``config.attributes['engine']``).

On SQLite, batch operations rebuild a table (create a copy, move the rows, drop the old one).
With foreign keys on, dropping the old table is an implicit ``DELETE`` that would cascade to
every ``ON DELETE CASCADE`` child (``sync_schedule`` of ``connections``), so migrations run
with them off, as SQLite's ALTER TABLE documentation prescribes, and ``foreign_key_check``
must find nothing before the connection goes back to the pool with them on again.
"""

from __future__ import annotations

from alembic import context

from tether.store.models import Base

config = context.config
engine = config.attributes["engine"]
sqlite = engine.dialect.name == "sqlite"

with engine.connect() as connection:
    raw = connection.connection.dbapi_connection
    if sqlite:  # outside any transaction, or SQLite ignores it
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            raw.execute("PRAGMA foreign_keys=ON")
