"""The connection's tokens: sealed storage, refresh (one at a time, across processes), expiry.

Refresh is serialised per connection by a lease in the database (``refresh_lease_until``,
taken with a compare-and-set ``UPDATE``), so any number of threads, workers and hosts cause
at most one refresh at the source. A caller says which access token it found stale; if the
stored one has changed meanwhile, somebody else already refreshed and nothing is sent.

``invalid_grant`` (or an expired access token without a refresh token) moves the connection to
EXPIRED and drops its tokens; network failures never expire a connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, update

from tether.connections import lifecycle
from tether.connections.sources import smart_client
from tether.connections.sync_errors import sync_error
from tether.domain import Status
from tether.errors import OAuthProtocolError, SourceUnavailable
from tether.logging import get_logger
from tether.oauth import rfc6749
from tether.runtime import Runtime
from tether.sealed import connection_binding
from tether.store.models import Connection, DataSource

log = get_logger("tether.tokens")

LEASE_SECONDS = 30
LEASE_WAIT_SECONDS = 45.0
LEASE_POLL_SECONDS = 0.05
REFRESH_AHEAD_SECONDS = 300
EXPIRED_CODE = "AUTHORIZATION_EXPIRED"


class RefreshResult(StrEnum):
    REFRESHED = "refreshed"  # this call refreshed at the source
    ALREADY_FRESH = "already_fresh"  # another caller refreshed first
    EXPIRED = "expired"  # the grant is dead: the connection is now EXPIRED
    NOT_CONNECTED = "not_connected"  # nothing to refresh (disconnected, deleted, …)


@dataclass(frozen=True)
class AccessToken:
    """A usable access token for one grant epoch of a connection."""

    token: str
    sealed: str
    epoch: int
    patient_id: str | None
    expires_at: datetime | None


def store_tokens(
    runtime: Runtime, conn: Connection, tokens: rfc6749.TokenSet, *, now: datetime
) -> None:
    """Seal ``tokens`` into ``conn`` (keeping the old refresh token if none was rotated in)."""
    conn.access_token = runtime.vault.encrypt(
        tokens.access_token, binding=connection_binding(conn.id, "access_token")
    )
    if tokens.refresh_token:
        conn.refresh_token = runtime.vault.encrypt(
            tokens.refresh_token, binding=connection_binding(conn.id, "refresh_token")
        )
    conn.token_expires_at = (
        now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None
    )
    if tokens.scope:
        conn.scope = tokens.scope


def drop_tokens(conn: Connection) -> None:
    conn.access_token = None
    conn.refresh_token = None
    conn.credentials = None
    conn.token_expires_at = None
    conn.refresh_lease_until = None


def access_token(runtime: Runtime, conn: Connection) -> AccessToken | None:
    if conn.access_token is None or conn.status != Status.CONNECTED:
        return None
    return AccessToken(
        token=runtime.vault.decrypt(
            conn.access_token, binding=connection_binding(conn.id, "access_token")
        ),
        sealed=conn.access_token,
        epoch=conn.grant_epoch,
        patient_id=conn.patient_id,
        expires_at=conn.token_expires_at,
    )


def needs_refresh(conn: Connection, now: datetime, ahead: int = REFRESH_AHEAD_SECONDS) -> bool:
    return conn.token_expires_at is not None and conn.token_expires_at <= now + timedelta(
        seconds=ahead
    )


def _take_lease(runtime: Runtime, connection_pk: int) -> bool:
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    while True:
        now = runtime.clock()
        with runtime.db.write() as session:
            result = session.execute(
                update(Connection)
                .where(
                    Connection.id == connection_pk,
                    or_(
                        Connection.refresh_lease_until.is_(None),
                        Connection.refresh_lease_until < now,
                    ),
                )
                .values(refresh_lease_until=now + timedelta(seconds=LEASE_SECONDS))
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(LEASE_POLL_SECONDS)


def _release_lease(runtime: Runtime, connection_pk: int) -> None:
    with runtime.db.write() as session:
        session.execute(
            update(Connection)
            .where(Connection.id == connection_pk)
            .values(refresh_lease_until=None)
        )


def refresh_connection(
    runtime: Runtime, connection_pk: int, *, stale_sealed: str | None, actor: str = "system"
) -> RefreshResult:
    """Refresh the connection's access token unless someone already replaced ``stale_sealed``.

    ``stale_sealed`` is the sealed access token the caller found stale (``None``: refresh
    whatever is stored). Raises :class:`~tether.oauth.SourceUnavailable` when the source
    cannot be reached; the connection is left as it was.
    """
    if not _take_lease(runtime, connection_pk):
        raise SourceUnavailable("another refresh of this connection is still running")
    try:
        with runtime.db.read() as session:
            conn = session.get(Connection, connection_pk)
            source = session.get(DataSource, conn.data_source_id) if conn else None
        if conn is None or source is None or conn.status != Status.CONNECTED:
            return RefreshResult.NOT_CONNECTED
        if stale_sealed is not None and conn.access_token != stale_sealed:
            return RefreshResult.ALREADY_FRESH
        epoch = conn.grant_epoch
        if conn.refresh_token is None:
            if conn.token_expires_at is not None and conn.token_expires_at > runtime.clock():
                return RefreshResult.ALREADY_FRESH
            expire(runtime, connection_pk, epoch, actor, reason="no refresh token")
            return RefreshResult.EXPIRED
        refresh_token = runtime.vault.decrypt(
            conn.refresh_token, binding=connection_binding(conn.id, "refresh_token")
        )
        try:
            with smart_client(runtime, source) as (client, config, _base):
                tokens = rfc6749.refresh(client, config, refresh_token=refresh_token)
        except OAuthProtocolError as exc:
            if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                expire(runtime, connection_pk, epoch, actor, reason=exc.error)
                return RefreshResult.EXPIRED
            raise SourceUnavailable(f"refresh refused: {exc.error}") from None
        return _save_refreshed(runtime, connection_pk, epoch, tokens)
    finally:
        _release_lease(runtime, connection_pk)


def _save_refreshed(
    runtime: Runtime, connection_pk: int, epoch: int, tokens: rfc6749.TokenSet
) -> RefreshResult:
    """Save the new access token and the rotated refresh token together, fenced by epoch."""
    now = runtime.clock()
    with runtime.db.write() as session:
        conn = session.get(Connection, connection_pk, with_for_update=True)
        if conn is None or conn.grant_epoch != epoch or conn.status != Status.CONNECTED:
            # Disconnected or deleted while we refreshed: the new tokens must not be kept.
            return RefreshResult.NOT_CONNECTED
        store_tokens(runtime, conn, tokens, now=now)
    log.info("access token refreshed", connection=connection_pk)
    return RefreshResult.REFRESHED


def expire(runtime: Runtime, connection_pk: int, epoch: int, actor: str, *, reason: str) -> None:
    """The grant is dead: EXPIRED with AUTHORIZATION_EXPIRED, tokens and credentials dropped."""
    now = runtime.clock()
    with runtime.db.write() as session:
        conn = session.get(Connection, connection_pk, with_for_update=True)
        if conn is None or conn.grant_epoch != epoch or conn.status != Status.CONNECTED:
            return
        drop_tokens(conn)
        conn.sync_errors = [
            *[e for e in conn.sync_errors if _code(e) != EXPIRED_CODE],
            expired_error(),
        ]
        lifecycle.transition(
            session,
            conn,
            Status.EXPIRED,
            action="connection.expired",
            actor=actor,
            now=now,
            detail={"reason": reason},
        )
    log.info("connection expired", connection=connection_pk, reason=reason)


def _code(error: dict[str, object]) -> object:
    coding = error.get("coding")
    if isinstance(coding, list) and coding and isinstance(coding[0], dict):
        return coding[0].get("code")
    return None


def expired_error() -> dict[str, object]:
    return sync_error(EXPIRED_CODE)
