"""Indexes for a million members: the token and grant sweeps, one member's audit page

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 12:00:00

Measured with ``python -m bench scale`` (3,000,000 connections, 10,000,000 audit events):

- the expiring-tokens sweep walked every CONNECTED row for the few whose token expires soon
  (no index named ``token_expires_at``); now a partial index holds only the rows that have a
  refresh token, by status and expiry;
- the expiring-grants sweep walked every grant inside the notice period, though all but a few
  had had their notice; the partial index holds only those not yet noticed;
- ``GET /v1/audit-events?memberId=`` walked the tenant's whole log;
- ``connections.member_id`` had an index of its own beside the unique
  ``(member_id, data_source_id)`` one that leads with it: one more index to write on every
  claim, heartbeat and status change, for nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_index("ix_connections_member_id")
        batch.drop_index("ix_connections_authorization_expires")
        batch.create_index(
            "ix_connections_grant_end_unnoticed",
            ["status", "authorization_expires_at"],
            sqlite_where=sa.text("expiring_notice_epoch IS NOT grant_epoch"),
            postgresql_where=sa.text("expiring_notice_epoch IS DISTINCT FROM grant_epoch"),
        )
        batch.create_index(
            "ix_connections_refreshable",
            ["status", "token_expires_at"],
            sqlite_where=sa.text("refresh_token IS NOT NULL"),
            postgresql_where=sa.text("refresh_token IS NOT NULL"),
        )
    with op.batch_alter_table("audit_events") as batch:
        batch.create_index("ix_audit_events_member", ["tenant_id", "member_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index("ix_audit_events_member")
    with op.batch_alter_table("connections") as batch:
        batch.drop_index("ix_connections_refreshable")
        batch.drop_index("ix_connections_grant_end_unnoticed")
        batch.create_index(
            "ix_connections_authorization_expires", ["status", "authorization_expires_at"]
        )
        batch.create_index("ix_connections_member_id", ["member_id"])
