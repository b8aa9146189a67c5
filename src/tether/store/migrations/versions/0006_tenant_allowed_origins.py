"""tenant allowed origins

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tether.store.models  # noqa: F401 - custom column types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing tenants start with no extra origins; the default is dropped afterwards so the
    # schema matches the model (the application always writes the column).
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("allowed_origins", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.alter_column("allowed_origins", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("allowed_origins")
