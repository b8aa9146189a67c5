"""Ending a grant: take the tokens out of the row, then revoke them at the source (RFC 7009).

:func:`take_grant` runs inside the caller's unit of work: it reads the plaintext tokens, drops
them from the row and bumps the grant epoch, so a sync already running writes nothing more.
:func:`revoke_at_source` runs after that transaction has committed (no network call inside a
transaction); a failed revocation is recorded in the audit trail and never blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.connections import lifecycle
from tether.connections.sources import smart_client
from tether.connections.tokens import drop_tokens
from tether.logging import get_logger
from tether.oauth import rfc7009
from tether.runtime import Runtime
from tether.sealed import connection_binding
from tether.store.models import Connection, DataSource

log = get_logger("tether.connections")


@dataclass(frozen=True)
class TakenGrant:
    """The tokens of a grant that has just ended, held only until they are revoked."""

    connection_pk: int
    source_id: str
    access: str | None
    refresh: str | None


def take_grant(runtime: Runtime, conn: Connection) -> TakenGrant:
    """Read the plaintext tokens for revocation, drop them from the row, end the epoch."""
    grant = TakenGrant(
        connection_pk=conn.id,
        source_id=conn.data_source_id,
        access=runtime.vault.decrypt_optional(
            conn.access_token, binding=connection_binding(conn.id, "access_token")
        ),
        refresh=runtime.vault.decrypt_optional(
            conn.refresh_token, binding=connection_binding(conn.id, "refresh_token")
        ),
    )
    drop_tokens(conn)
    conn.grant_epoch += 1
    conn.sync_heartbeat_at = None  # (its schedule goes as it leaves CONNECTED: lifecycle)
    return grant


def revoke_at_source(runtime: Runtime, grant: TakenGrant, *, actor: str) -> None:
    """RFC 7009 at the source, outside any transaction; the outcome goes to the audit log."""
    if grant.access is None and grant.refresh is None:
        return
    outcome = "not_supported"
    try:
        with runtime.db.read() as session:
            source = session.get(DataSource, grant.source_id)
        if source is not None and (source.settings or {}).get("oauth"):
            with smart_client(runtime, source) as (client, config, _base):
                if config.revocation_endpoint:
                    results = [
                        rfc7009.revoke(client, config, token=token, hint=hint)
                        for token, hint in (
                            (grant.refresh, "refresh_token"),
                            (grant.access, "access_token"),
                        )
                        if token
                    ]
                    outcome = "revoked" if all(results) else "failed"
    except Exception as exc:
        log.warning("revocation failed", connection=grant.connection_pk, error=type(exc).__name__)
        outcome = "failed"
    with runtime.db.write() as session:
        conn = session.get(Connection, grant.connection_pk)
        if conn is not None:
            lifecycle.audit(
                session,
                conn=conn,
                action="connection.revocation",
                actor=actor,
                now=runtime.clock(),
                detail={"outcome": outcome},
            )
