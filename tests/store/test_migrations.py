"""Migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from tether.store.db import Database
from tether.store.migrate import alembic_config, current_revision, upgrade
from tether.store.models import Base


def test_migrated_schema_matches_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
        assert current_revision(db.engine) is not None
        upgrade(db.engine)  # idempotent at head
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    with db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA busy_timeout")).scalar() > 0
    db.dispose()


def _seed_member(conn, at: str, *sources: str) -> None:
    """Tenant ``t``, its member ``m`` and FHIR data sources ``sources``, in raw SQL (the
    migration tests run at older revisions than the models)."""
    conn.execute(
        text(
            "INSERT INTO tenants (id, name, return_urls, allowed_origins,"
            " created_at) VALUES ('t', 'T', '[]', '[]', :at)"
        ),
        {"at": at},
    )
    conn.execute(
        text(
            "INSERT INTO members (id, tenant_id, external_id, created_at)"
            " VALUES ('m', 't', 'x', :at)"
        ),
        {"at": at},
    )
    for source in sources:
        conn.execute(
            text(
                "INSERT INTO data_sources (id, name, sort_name, category, type,"
                " aliases, settings, retired, updated_at) VALUES"
                " (:id, 'S', 's', 'PROVIDER', 'FHIR', '[]', '{}', false, :at)"
            ),
            {"id": source, "at": at},
        )


def test_0023_drops_the_stored_resources_foreign_keys_and_keeps_the_rows(db_url: str) -> None:
    """The two foreign keys of fhir_resources go (SQLite rebuilds the table: its rows, indexes
    and data survive), and come back on downgrade."""
    db = Database(db_url)
    config = alembic_config(db.engine)
    row = ("m", 1, "Observation", "o-1", '{"resourceType":"Observation","id":"o-1"}')

    def foreign_keys() -> set[tuple[str | None, str]]:
        with db.engine.connect() as conn:
            found = inspect(conn).get_foreign_keys("fhir_resources")
        return {(fk["name"], fk["referred_table"]) for fk in found}

    def keys_and_indexes() -> tuple[set[str | None], set[str | None]]:
        with db.engine.connect() as conn:
            inspector = inspect(conn)
            unique = {uq["name"] for uq in inspector.get_unique_constraints("fhir_resources")}
            indexes = {ix["name"] for ix in inspector.get_indexes("fhir_resources")}
        return unique, indexes - unique  # PostgreSQL lists a constraint's index among them

    keys = {
        ("fk_fhir_resources_member_id_members", "members"),
        ("fk_fhir_resources_connection_id_connections", "connections"),
    }
    expected = (
        {"uq_fhir_resources_connection_id"},  # the upsert's ON CONFLICT target
        {
            "ix_fhir_resources_member_type",
            "ix_fhir_resources_member_changed",
            "ix_fhir_resources_connection",
        },
    )

    def stored() -> list[tuple[object, ...]]:
        with db.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT member_id, connection_id, resource_type, resource_id, data"
                        " FROM fhir_resources"
                    )
                )
            ]

    try:
        command.downgrade(config, "0022")
        assert foreign_keys() == keys
        with db.engine.begin() as conn:
            at = "2026-12-05 12:00:00"
            _seed_member(conn, at, "s1")
            conn.execute(
                text(
                    "INSERT INTO connections (id, member_id, tenant_id, data_source_id,"
                    " status, sync_status, sync_errors, created_at, status_updated_at,"
                    " grant_epoch, resource_counts, sync_cursor) VALUES"
                    " (1, 'm', 't', 's1', 'CONNECTED', 'PENDING', '[]', :at, :at, 1, '{}',"
                    " '{}')"
                ),
                {"at": at},
            )
            conn.execute(
                text(
                    "INSERT INTO fhir_resources (member_id, connection_id, resource_type,"
                    " resource_id, grant_epoch, data) VALUES (:m, :c, :t, :i, 1, :d)"
                ),
                dict(zip("mctid", row, strict=True)),
            )
        upgrade(db.engine)
        assert foreign_keys() == set()
        assert stored() == [row]
        assert keys_and_indexes() == expected
        command.downgrade(config, "0022")
        assert foreign_keys() == keys
        assert stored() == [row]
        assert keys_and_indexes() == expected
    finally:
        upgrade(db.engine)
        db.dispose()


def test_0022_moves_the_due_times_of_connected_connections_to_the_schedule(db_url: str) -> None:
    """Only CONNECTED connections keep a due time; downgrading puts them back on the rows."""
    db = Database(db_url)
    config = alembic_config(db.engine)
    due = "2026-12-04 12:00:00"
    try:
        command.downgrade(config, "0021")
        with db.engine.begin() as conn:
            _seed_member(conn, due, "s1", "s2")
            for pk, source, status in ((1, "s1", "CONNECTED"), (2, "s2", "EXPIRED")):
                conn.execute(
                    text(
                        "INSERT INTO connections (id, member_id, tenant_id, data_source_id,"
                        " status, sync_status, sync_errors, created_at, status_updated_at,"
                        " grant_epoch, resource_counts, sync_cursor, next_sync_at) VALUES"
                        " (:pk, 'm', 't', :source, :status, 'PENDING', '[]', :at, :at, 1,"
                        " '{}', '{}', :at)"
                    ),
                    {"pk": pk, "source": source, "status": status, "at": due},
                )
        upgrade(db.engine)
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT connection_id, due_at FROM sync_schedule")).all()
        assert [(pk, str(at)[:19]) for pk, at in rows] == [(1, due)]

        command.downgrade(config, "0021")
        with db.engine.connect() as conn:
            back = conn.execute(text("SELECT id, next_sync_at FROM connections ORDER BY id")).all()
        assert [(pk, at and str(at)[:19]) for pk, at in back] == [(1, due), (2, None)]
    finally:
        upgrade(db.engine)
        db.dispose()
