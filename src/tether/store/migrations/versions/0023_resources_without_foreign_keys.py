"""Stored resources without foreign keys

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 13:00:00

Every resource a sync stores fired two foreign-key checks on PostgreSQL: a trigger per row
running ``SELECT 1 FROM members … FOR KEY SHARE`` and the same on ``connections``, 360,000 of
each for the fleet benchmark's 1,000 syncs (``pg_stat_statements``, 2026-12-05). Both are
already guaranteed where the rows are written: a sync's write transaction begins with the
fence, an ``UPDATE`` of the connection's row (so the row exists and stays locked until
commit), and the resources' ``member_id`` is that connection's member. Connections and members
are never deleted (a deleted connection keeps its row; its data is removed by the delete job),
so nothing could be orphaned. ``fhir_search_values`` has had no foreign key for the same
reason since 0018.

Measured 2026-12-05 (60,000 Observations stored with ``upsert_resources``, 2,000 a
transaction, three runs each, alternating): PostgreSQL's CPU 3.0 to 3.4 s with the keys, 2.2
to 2.7 s without; wall 3.6 to 4.1 s against 2.7 to 3.4 s. SQLite's checks are index lookups
in C and did not show in its timings; its table is rebuilt here (batch mode) so that both
engines have the models' schema. That rebuild copies the table and its indexes while holding
the database's write lock: on a large SQLite file, run ``tether migrate`` before starting the
new version (``tether serve`` would otherwise migrate at start and answer nothing meanwhile).
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fhir_resources") as batch:
        batch.drop_constraint("fk_fhir_resources_connection_id_connections", type_="foreignkey")
        batch.drop_constraint("fk_fhir_resources_member_id_members", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("fhir_resources") as batch:
        batch.create_foreign_key(
            "fk_fhir_resources_connection_id_connections",
            "connections",
            ["connection_id"],
            ["id"],
        )
        batch.create_foreign_key(
            "fk_fhir_resources_member_id_members", "members", ["member_id"], ["id"]
        )
