"""The connection's tokens: sealed storage, refresh (one at a time, across processes), expiry.

Refresh is serialised per connection by a lease in the database (``refresh_lease_until``,
taken with a compare-and-set ``UPDATE``), so any number of threads, workers and hosts cause
at most one refresh at the source. A caller says which access token it found stale; if the
stored one has changed meanwhile, somebody else already refreshed and nothing is sent.

``invalid_grant`` (or an expired access token without a refresh token) moves the connection to
EXPIRED and drops its tokens; network failures never expire a connection.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from sqlalchemy import or_, select, update

from tether.connections import lifecycle
from tether.connections.queries import of_live_accounts
from tether.connections.sources import SourceProfile, smart_client
from tether.connections.sync_errors import sync_error
from tether.domain import Status
from tether.errors import Fenced, OAuthProtocolError, SourceIncompatible, SourceUnavailable
from tether.logging import get_logger
from tether.metrics import SOURCE_TALLY, TOKEN_REFRESHES
from tether.oauth import rfc6749, rfc7523, rfc7662
from tether.oauth.rfc6749 import OAuth2Client
from tether.oauth.smart_discovery import SmartConfiguration
from tether.runtime import Runtime
from tether.sealed import connection_binding
from tether.store.models import Connection, DataSource

log = get_logger("tether.tokens")

LEASE_SECONDS = 30
LEASE_WAIT_SECONDS = 45.0
LEASE_POLL_SECONDS = 0.05
REFRESH_AHEAD_SECONDS = 300  # the expiring-tokens sweep refreshes this long before expiry
REFRESH_MARGIN_SECONDS = 60  # a sync refreshes a token this close to expiry before using it,
REFRESH_MARGIN_SHARE = 0.2  # or within this share of its lifetime when that is shorter
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


@dataclass(frozen=True)
class SourceAuthorization:
    """How to authorize a request to a connection's FHIR API, for one grant epoch."""

    header: str = field(repr=False)  # the ``Authorization`` value: a secret, never printed
    sealed: str  # the sealed access token (bearer) or credentials (basic) it was made from
    kind: Literal["bearer", "basic"]


def with_grant_end(
    client: OAuth2Client,
    config: SmartConfiguration,
    source: DataSource,
    tokens: rfc6749.TokenSet,
) -> rfc6749.TokenSet:
    """When neither the token response nor the directory says when the grant ends, ask the
    source's introspection endpoint about the (new) refresh token (RFC 7662 ``exp``)."""
    if (
        tokens.refresh_token is None
        or tokens.refresh_token_expires_in is not None
        or SourceProfile.of(source.settings).authorization_lifetime is not None
    ):
        return tokens
    left = rfc7662.refresh_token_lifetime(client, config, refresh_token=tokens.refresh_token)
    return tokens if left is None else replace(tokens, refresh_token_expires_in=left)


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
    conn.token_lifetime = int(tokens.expires_in) if tokens.expires_in else None
    if tokens.scope:
        conn.scope = tokens.scope
    if tokens.refresh_token_expires_in is not None:
        # The source says when the grant ends (each response, as a refresh rotates it).
        conn.authorization_expires_at = now + timedelta(seconds=tokens.refresh_token_expires_in)


def drop_tokens(conn: Connection) -> None:
    conn.access_token = None
    conn.refresh_token = None
    conn.credentials = None
    conn.token_expires_at = None
    conn.token_lifetime = None
    conn.refresh_lease_until = None
    conn.authorization_expires_at = None


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


def claim_expiring_tokens(runtime: Runtime, *, limit: int) -> list[tuple[int, str]]:
    """Connections of live members of live tenants whose access token expires within
    ``REFRESH_AHEAD_SECONDS`` and that can be refreshed now (a refresh token, no live lease):
    ``(pk, sealed access token)`` pairs.

    Nothing is written: the refresh job takes the lease, and the sealed token it is given makes
    a second refresh of the same token a no-op, so a connection found twice refreshes once.
    """
    now = runtime.clock()
    soon = now + timedelta(seconds=REFRESH_AHEAD_SECONDS)
    with runtime.db.read() as session:
        rows = session.execute(
            of_live_accounts(select(Connection.id, Connection.access_token))
            .where(
                Connection.status == Status.CONNECTED.value,
                Connection.refresh_token.is_not(None),
                Connection.token_expires_at <= soon,
                or_(
                    Connection.refresh_lease_until.is_(None),
                    Connection.refresh_lease_until < now,
                ),
            )
            # the soonest first; and the order that keeps the planner on the partial index
            # (ix_connections_refreshable) whatever it guesses of the expiries' spread
            .order_by(Connection.token_expires_at)
            .limit(limit)
        ).all()
    return [(pk, sealed or "") for pk, sealed in rows]


def source_authorization(
    runtime: Runtime, *, connection_pk: int, epoch: int, refresh_ahead: bool = True
) -> SourceAuthorization | None:
    """The ``Authorization`` to send to the connection's FHIR API now, for grant ``epoch``.

    Raises :class:`~tether.errors.Fenced` when the grant epoch moved on (or the connection left
    CONNECTED while its token was being refreshed) and :class:`~tether.errors.SourceUnavailable`
    when a refresh could not reach the source; None when nothing usable is left (not CONNECTED,
    no token, or the grant turned out to be dead and the connection is now EXPIRED).

    A bearer token that has expired, or that has a refresh token and expires within its
    :func:`refresh_margin`, is refreshed first, **at most once per call**: whatever the
    refresh leaves in place is used as it is. The bound matters for sources whose tokens live a
    minute or less, where a freshly issued token is itself "about to expire"; refreshing until it
    is not would never end. A token within the margin that cannot be refreshed (no refresh token,
    or the refresh found nothing to do) is used until it actually expires; an expired one without
    a refresh token expires the grant.

    The margin depends on the token's lifetime (stored with it): a token with 30 s left may be an
    hour-long one near its end (refreshing ahead saves a 401 and a retry mid-sync) or a fresh
    30-second one (refreshing gains nothing). A token stored before lifetimes were kept gets the
    full minute; one refresh per call bounds the cost of that guess to one needless refresh.
    ``refresh_ahead=False`` is for a caller that has just refreshed itself (after a 401) and
    wants what is stored now.
    """
    conn = _read_in_epoch(runtime, connection_pk, epoch)
    current = _authorization(runtime, conn)
    if (
        current is None
        or current.kind == "basic"
        or not refresh_ahead
        or not _refresh_due(conn, runtime.clock())
    ):
        return current
    result = refresh_connection(runtime, connection_pk=connection_pk, stale_sealed=current.sealed)
    if result is RefreshResult.EXPIRED:
        return None
    if result is RefreshResult.NOT_CONNECTED:
        raise Fenced()
    return _authorization(runtime, _read_in_epoch(runtime, connection_pk, epoch))


def _read_in_epoch(runtime: Runtime, connection_pk: int, epoch: int) -> Connection:
    """The connection as stored now; Fenced unless it still holds grant ``epoch``."""
    with runtime.db.read() as session:
        conn = session.get(Connection, connection_pk)
    if conn is None or conn.grant_epoch != epoch:
        raise Fenced()
    return conn


def basic_authorization(runtime: Runtime, conn: Connection) -> str | None:
    """The ``Authorization`` header value (RFC 7617) for an ``http_basic`` connection, from its
    sealed portal credentials; None for any other connection."""
    if conn.credentials is None or conn.access_token is not None:
        return None
    creds = json.loads(
        runtime.vault.decrypt(conn.credentials, binding=connection_binding(conn.id, "credentials"))
    )
    raw = f"{creds['username']}:{creds['password']}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _authorization(runtime: Runtime, conn: Connection) -> SourceAuthorization | None:
    if conn.status != Status.CONNECTED:
        return None
    basic = basic_authorization(runtime, conn)
    if basic is not None:
        return SourceAuthorization(header=basic, sealed=conn.credentials or "", kind="basic")
    token = access_token(runtime, conn)
    if token is None:
        return None
    return SourceAuthorization(header=f"Bearer {token.token}", sealed=token.sealed, kind="bearer")


def _refresh_due(conn: Connection, now: datetime) -> bool:
    expires = conn.token_expires_at
    if expires is None:
        return False
    if expires <= now:
        return True  # refresh it, or learn (without a refresh token) that the grant is dead
    return conn.refresh_token is not None and expires - now <= refresh_margin(conn.token_lifetime)


def refresh_margin(lifetime: int | None) -> timedelta:
    """How close to its expiry a token is refreshed before use: a minute, or a fifth of the
    token's lifetime when that is less (a 5-minute token at 1 minute, a 30-second one at 6 s,
    so a freshly issued short token is not itself "about to expire")."""
    seconds = float(REFRESH_MARGIN_SECONDS)
    if lifetime:
        seconds = min(seconds, lifetime * REFRESH_MARGIN_SHARE)
    return timedelta(seconds=seconds)


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
    runtime: Runtime, *, connection_pk: int, stale_sealed: str | None, actor: str = "system"
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
            expire(
                runtime,
                connection_pk=connection_pk,
                epoch=epoch,
                actor=actor,
                reason="no refresh token",
            )
            return RefreshResult.EXPIRED
        refresh_token = runtime.vault.decrypt(
            conn.refresh_token, binding=connection_binding(conn.id, "refresh_token")
        )
        try:
            with smart_client(runtime, source) as (client, config, _base):
                tokens = rfc6749.refresh(client, config, refresh_token=refresh_token)
                tokens = with_grant_end(client, config, source, tokens)
        except OAuthProtocolError as exc:
            if exc.error == "invalid_client" and _signs_assertions(source):
                # A refused assertion is tether's key against the source's copy of the JWKS
                # (not yet fetched, rotated too fast): the operator's to fix, the grant lives.
                log.error("refresh: client assertion refused", source=source.id)
                _token_endpoint_failed(source.id)
                raise SourceUnavailable("refresh refused: invalid_client") from None
            if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                TOKEN_REFRESHES.labels(source.id, "expired").inc()
                expire(
                    runtime, connection_pk=connection_pk, epoch=epoch, actor=actor, reason=exc.error
                )
                return RefreshResult.EXPIRED
            _token_endpoint_failed(source.id)
            raise SourceUnavailable(f"refresh refused: {exc.error}") from None
        except SourceUnavailable:
            _token_endpoint_failed(source.id)
            raise
        except SourceIncompatible as exc:
            _token_endpoint_failed(source.id)
            raise SourceUnavailable(str(exc)) from None
        TOKEN_REFRESHES.labels(source.id, "refreshed").inc()
        return _save_refreshed(runtime, connection_pk, epoch, tokens)
    finally:
        _release_lease(runtime, connection_pk)


def _signs_assertions(source: DataSource) -> bool:
    oauth = (source.settings or {}).get("oauth") or {}
    return bool(oauth.get("token_endpoint_auth_method") == rfc7523.METHOD)


def _token_endpoint_failed(source_id: str) -> None:
    """The source's token endpoint could not answer a refresh: a metric and source health."""
    TOKEN_REFRESHES.labels(source_id, "unavailable").inc()
    SOURCE_TALLY.token_failure(source_id)


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


def expire(runtime: Runtime, *, connection_pk: int, epoch: int, actor: str, reason: str) -> None:
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
