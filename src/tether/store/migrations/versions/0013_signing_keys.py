"""signing keys: tether's own keys for private_key_jwt client authentication (RFC 7523)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tether.store.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=10), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", tether.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("active_from", tether.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", tether.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("unpublish_at", tether.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
