"""directory version index and byte-wise names

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 23:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("data_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_sources_lat"))
        batch_op.drop_index(batch_op.f("ix_data_sources_sort_name"))
        batch_op.drop_index(batch_op.f("ix_data_sources_type"))
        batch_op.create_index("ix_data_sources_updated", ["updated_at"], unique=False)
        if op.get_bind().dialect.name == "postgresql":
            batch_op.alter_column(
                "sort_name",
                existing_type=sa.String(length=300),
                type_=sa.String(length=300, collation="C"),
                existing_nullable=False,
            )


def downgrade() -> None:
    with op.batch_alter_table("data_sources", schema=None) as batch_op:
        if op.get_bind().dialect.name == "postgresql":
            batch_op.alter_column(
                "sort_name",
                existing_type=sa.String(length=300, collation="C"),
                type_=sa.String(length=300),
                existing_nullable=False,
            )
        batch_op.drop_index("ix_data_sources_updated")
        batch_op.create_index(batch_op.f("ix_data_sources_type"), ["type"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_sources_sort_name"), ["sort_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_sources_lat"), ["lat"], unique=False)
