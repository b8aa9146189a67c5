"""observability: connections fleet and tenant indexes (tenant_id kept on connections),
source health tables

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-03 17:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tether.store.models

revision = "0011"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connections", sa.Column("tenant_id", sa.String(length=40), nullable=True))
    op.execute(
        "UPDATE connections SET tenant_id = "
        "(SELECT members.tenant_id FROM members WHERE members.id = connections.member_id)"
    )
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.alter_column("tenant_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_connections_tenant_id_tenants"), "tenants", ["tenant_id"], ["id"]
        )
        batch_op.create_index(
            "ix_connections_fleet", ["status", "sync_status", "data_source_id"], unique=False
        )
        batch_op.create_index("ix_connections_tenant", ["tenant_id", "id"], unique=False)
        batch_op.create_index(
            "ix_connections_tenant_status", ["tenant_id", "status", "id"], unique=False
        )
    op.create_table(
        "source_stats",
        sa.Column("data_source_id", sa.String(length=100), nullable=False),
        sa.Column("minute", tether.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("token_failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("data_source_id", "minute", name=op.f("pk_source_stats")),
    )
    op.create_table(
        "source_health",
        sa.Column("data_source_id", sa.String(length=100), nullable=False),
        sa.Column("last_success_at", tether.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", tether.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("throttled_until", tether.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("degraded_since", tether.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("data_source_id", name=op.f("pk_source_health")),
    )
    op.create_table(
        "source_syncs",
        sa.Column("data_source_id", sa.String(length=100), nullable=False),
        sa.Column(
            "connection_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("ended_at", tether.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source_down", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("data_source_id", "connection_id", name=op.f("pk_source_syncs")),
    )


def downgrade() -> None:
    op.drop_table("source_syncs")
    op.drop_table("source_health")
    op.drop_table("source_stats")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_index("ix_connections_tenant_status")
        batch_op.drop_index("ix_connections_tenant")
        batch_op.drop_index("ix_connections_fleet")
        batch_op.drop_constraint(batch_op.f("fk_connections_tenant_id_tenants"), type_="foreignkey")
        batch_op.drop_column("tenant_id")
