"""fhir_resources by (connection_id, id): a delete walks a connection's rows in key order

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 10:00:00

The single-column index on ``connection_id`` made each batch of a delete re-find its rows past
the dead tuples of the batches before it (PostgreSQL keeps them until vacuum): quadratic on a
large connection. Ordered by ``id`` within the connection, each batch starts past the last.
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fhir_resources") as batch:
        batch.drop_index("ix_fhir_resources_connection_id")
        batch.create_index("ix_fhir_resources_connection", ["connection_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("fhir_resources") as batch:
        batch.drop_index("ix_fhir_resources_connection")
        batch.create_index("ix_fhir_resources_connection_id", ["connection_id"])
