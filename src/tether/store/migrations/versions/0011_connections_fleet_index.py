"""connections fleet index (status, sync_status, data_source_id)

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-03 17:25:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.create_index(
            "ix_connections_fleet", ["status", "sync_status", "data_source_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_index("ix_connections_fleet")
