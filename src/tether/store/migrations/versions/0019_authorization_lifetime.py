"""authorization lifetime: when a connection's grant ends at its source, and the notice sent

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tether.store.models

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(
            sa.Column(
                "authorization_expires_at",
                tether.store.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("expiring_notice_epoch", sa.Integer(), nullable=True))
    # The expiring sweep: CONNECTED grants that end soon (tether.connections.expiring).
    op.create_index(
        "ix_connections_authorization_expires",
        "connections",
        ["status", "authorization_expires_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_connections_authorization_expires", table_name="connections")
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("expiring_notice_epoch")
        batch.drop_column("authorization_expires_at")
