"""SQLAlchemy 2 models. Migrations in ``tether/store/migrations`` must match these exactly
(a test compares them on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    return_urls: Mapped[list[Any]] = mapped_column(default=list)
    # Browser origins of the tenant's own apps: the completion page's postMessage targets
    # and GraphQL's CORS (besides the origins of its http(s) return URLs).
    allowed_origins: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Member(Base):
    """A tenant's member. Never deleted (disabled instead): stored resources keep their
    ``member_id`` without a foreign key (migration 0023)."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class DataSource(Base):
    __tablename__ = "data_sources"
    __table_args__ = (
        # The directory's version for the in-process search index (tether.directory.index).
        Index("ix_data_sources_updated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    # Normalised name (lower-case ASCII words); byte-wise order on PostgreSQL as on SQLite.
    sort_name: Mapped[str] = mapped_column(
        String(300).with_variant(String(300, collation="C"), "postgresql")
    )
    category: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(20))
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    address: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(20))
    zip: Mapped[str | None] = mapped_column(String(10), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    fhir_base_url: Mapped[str | None] = mapped_column(String(500))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataSourceTerm(Base):
    """One searchable word of a source's name or aliases (prefix search via the index)."""

    __tablename__ = "data_source_terms"

    # Byte-wise ("C") collation on PostgreSQL so that prefix ranges are index range scans.
    term: Mapped[str] = mapped_column(
        String(100).with_variant(String(100, collation="C"), "postgresql"), primary_key=True
    )
    source_id: Mapped[str] = mapped_column(
        ForeignKey("data_sources.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Connection(Base):
    """A member's connection to a data source. Never deleted: deleteConnection keeps the row
    (DELETED) and a job removes its data; stored resources keep their ``connection_id``
    without a foreign key (migration 0023), so a deletion of rows here would orphan them."""

    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("member_id", "data_source_id"),
        Index("ix_connections_sync_status", "sync_status"),
        # Covers the fleet gauges' GROUP BY (tether.connections.fleet): an index-only scan.
        Index("ix_connections_fleet", "status", "sync_status", "data_source_id"),
        # The tenant's view across members, keyset-paged (tether.connections.views).
        Index("ix_connections_tenant", "tenant_id", "id"),
        Index("ix_connections_tenant_status", "tenant_id", "status", "id"),
        # The expiring-grants sweep (tether.connections.expiring): only the grants not yet
        # noticed, so a sweep with nothing to do does not walk every grant in the notice period.
        Index(
            "ix_connections_grant_end_unnoticed",
            "status",
            "authorization_expires_at",
            sqlite_where=text("expiring_notice_epoch IS NOT grant_epoch"),
            postgresql_where=text("expiring_notice_epoch IS DISTINCT FROM grant_epoch"),
        ),
        # The expiring-tokens sweep (tether.connections.tokens): tokens that can be refreshed,
        # by expiry; those without a refresh token (expired until their next sync) stay out.
        Index(
            "ix_connections_refreshable",
            "status",
            "token_expires_at",
            sqlite_where=text("refresh_token IS NOT NULL"),
            postgresql_where=text("refresh_token IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No index of its own: the unique (member_id, data_source_id) index leads with it, and
    # every index is one more write on each claim, heartbeat and status change.
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    # The member's tenant, kept here so a tenant's connections page without a join.
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    data_source_id: Mapped[str] = mapped_column(ForeignKey("data_sources.id"))
    status: Mapped[str] = mapped_column(String(20))
    sync_status: Mapped[str] = mapped_column(String(20))
    sync_errors: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_synced_at: Mapped[datetime | None]
    grant_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # Secrets: vault ciphertexts bound to this row (never plaintext).
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    credentials: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None]
    token_lifetime: Mapped[int | None] = mapped_column(Integer)  # seconds it was issued for
    scope: Mapped[str | None] = mapped_column(Text)
    patient_id: Mapped[str | None] = mapped_column(String(200))
    resource_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sync_cursor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The sync's lease and fence (tether.sync.claim, tether.sync.fenced_writes). When the
    # next sync is due lives in SyncSchedule: the claims that push it ahead write small rows.
    sync_heartbeat_at: Mapped[datetime | None]
    refresh_lease_until: Mapped[datetime | None]
    # When the grant ends at the source (refresh_token_expires_in, or the directory's
    # authorization_lifetime); None when the source does not say.
    authorization_expires_at: Mapped[datetime | None]
    # The grant epoch connection.expiring was sent for (once per grant).
    expiring_notice_epoch: Mapped[int | None] = mapped_column(Integer)

    # Read-only: written only through tether.connections.schedule; loaded when asked for
    # (joinedload), never lazily. The views read the due time as a column instead
    # (connections.queries.VIEW_COLUMNS).
    schedule: Mapped[SyncSchedule | None] = relationship(viewonly=True, lazy="raise")

    @property
    def next_sync_at(self) -> datetime | None:
        """When the next sync is due (None unless CONNECTED); needs ``schedule`` loaded."""
        return self.schedule.due_at if self.schedule is not None else None


class SyncSchedule(Base):
    """When a CONNECTED connection's next sync is due: one row per connection that has one.

    Apart from the connection's row (1 to 2 KB, nine indexes) because the due-syncs claim pushes
    100 rows' times ahead per transaction; here each is a small row with two index entries
    (``python -m bench scale``). :mod:`tether.connections.schedule` writes it; a connection
    leaving CONNECTED loses its row (tether.connections.lifecycle).
    """

    __tablename__ = "sync_schedule"
    __table_args__ = (Index("ix_sync_schedule_due", "due_at"),)

    connection_id: Mapped[int] = mapped_column(
        BigId,
        ForeignKey("connections.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    due_at: Mapped[datetime]


class OAuthAttempt(Base):
    """One getOauthUrl: its launch link, then its state while the member is at the source.

    Only SHA-256 hashes of the launch token and the state are stored; the PKCE verifier is
    a vault ciphertext bound to the row.
    """

    __tablename__ = "oauth_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    launch_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    data_source_id: Mapped[str] = mapped_column(ForeignKey("data_sources.id"))
    return_url: Mapped[str | None] = mapped_column(Text)
    code_verifier: Mapped[str | None] = mapped_column(Text)
    # Hash of the cookie set on the browser that opened the launch link: the callback must
    # come back to that same browser.
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    launched_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(40))


class FhirResource(Base):
    __tablename__ = "fhir_resources"
    __table_args__ = (
        UniqueConstraint("connection_id", "resource_type", "resource_id"),
        Index("ix_fhir_resources_member_type", "member_id", "resource_type", "id"),
        # _lastUpdated and Bulk _since (tether.data.search).
        Index("ix_fhir_resources_member_changed", "member_id", "resource_type", "changed_at"),
        # A connection's rows in key order (tether.connections.deletion walks them).
        Index("ix_fhir_resources_connection", "connection_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys (0023): PostgreSQL checked each with a trigger per stored row, and the
    # sync's fence already holds the connection's row (whose member this is) locked while
    # it writes. Connections and members are never deleted; the delete job removes the rows.
    member_id: Mapped[str] = mapped_column(String(40))
    connection_id: Mapped[int] = mapped_column(BigId)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    last_updated: Mapped[str | None] = mapped_column(String(40))
    grant_epoch: Mapped[int] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)
    # tether's meta.lastUpdated of this version (UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ"; null for
    # rows stored before 0018) and the version's digest (tether.sync.checks): a sync that
    # fetches the same version again leaves the row alone.
    changed_at: Mapped[str | None] = mapped_column(String(32))
    content_hash: Mapped[str | None] = mapped_column(String(16))


class FhirSearchValue(Base):
    """What a stored resource is found by, for the search parameters tether indexes
    (tether.fhir.search_values): a token (system, code) or a date range (lo, hi)."""

    __tablename__ = "fhir_search_values"
    # Partial indexes: a token row is only in the token index, a date row only in the date
    # ones (each index a row is in is paid for on every sync write).
    __table_args__ = (
        Index(
            "ix_fhir_search_values_token",
            "member_id",
            "resource_type",
            "name",
            "code",
            sqlite_where=text("code IS NOT NULL"),
            postgresql_where=text("code IS NOT NULL"),
        ),
        Index(
            "ix_fhir_search_values_lo",
            "member_id",
            "resource_type",
            "name",
            "lo",
            sqlite_where=text("lo IS NOT NULL"),
            postgresql_where=text("lo IS NOT NULL"),
        ),
        Index(
            "ix_fhir_search_values_hi",
            "member_id",
            "resource_type",
            "name",
            "hi",
            sqlite_where=text("hi IS NOT NULL"),
            postgresql_where=text("hi IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign key: PostgreSQL checks one with a trigger per inserted row, and a sync
    # writes several values per resource. Whoever deletes resources deletes their values
    # (tether.connections.deletion); a sync replaces them (tether.sync.fenced_writes).
    resource_pk: Mapped[int] = mapped_column(BigId, index=True)
    member_id: Mapped[str] = mapped_column(String(40))
    resource_type: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(32))
    system: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str | None] = mapped_column(String(255))
    lo: Mapped[str | None] = mapped_column(String(26))
    hi: Mapped[str | None] = mapped_column(String(26))


class BulkExport(Base):
    """One FHIR Bulk Data export (tether.data.exports): what was asked, how far it got, and
    the files it wrote (their storage keys, never URLs with credentials)."""

    __tablename__ = "bulk_exports"
    __table_args__ = (Index("ix_bulk_exports_status", "status", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    # Whose data: one member's, or (null) every member of the tenant.
    member_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"), index=True)
    # Who asked (the credential that may read the status and the files): "tenant" or a member.
    owner: Mapped[str] = mapped_column(String(60))
    request_url: Mapped[str] = mapped_column(Text)
    types: Mapped[list[Any]] = mapped_column(default=list)
    since: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))  # accepted running completed failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    transaction_time: Mapped[str] = mapped_column(String(40))
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]


class AuditEvent(Base):
    """Who did what to which connection, when. Never tokens, never health data."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant", "tenant_id", "id"),
        # One member's page (``memberId``) without walking the tenant's whole log.
        Index("ix_audit_events_member", "tenant_id", "member_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    member_id: Mapped[str | None] = mapped_column(String(40))
    data_source_id: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    actor: Mapped[str] = mapped_column(String(100))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class SdkRefreshToken(Base):
    """A refresh token handed to the health SDK's client by ``getToken`` (tether.graphql).

    Only the SHA-256 of the token is stored. It is bound to one member of one tenant, expires,
    and is not rotated by a refresh; disabling the member or the tenant stops it, and so does
    revoking the API key that minted the member token it came from (``api_key_id``; null when
    the operator minted that token, or for tokens from before migration 0005).
    """

    __tablename__ = "sdk_refresh_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SourceStat(Base):
    """Requests to one data source in one minute, summed over every process
    (:mod:`tether.connections.source_health`); kept for a day."""

    __tablename__ = "source_stats"

    data_source_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    throttled: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    token_failures: Mapped[int] = mapped_column(Integer, default=0)


class SourceHealthRow(Base):
    """The latest moments seen of one data source, and since when it is degraded."""

    __tablename__ = "source_health"

    data_source_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    throttled_until: Mapped[datetime | None]
    degraded_since: Mapped[datetime | None]


class SourceSync(Base):
    """How each connection's latest sync of a source ended: failed because the source was
    down (5xx, timeouts, network), or not. How many connections fail tells a source's outage
    from one grant's trouble."""

    __tablename__ = "source_syncs"

    data_source_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    connection_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ended_at: Mapped[datetime]
    source_down: Mapped[bool] = mapped_column(Boolean)


class Event(Base):
    """One thing that happened to a connection, written in the same transaction as the change
    (a transactional outbox: :mod:`tether.events`). ``data`` is the Standard Webhooks payload's
    ``data``: ids, status, syncStatus, syncErrors, counts; never tokens, never health data."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_tenant", "tenant_id", "id"),
        Index("ix_events_tenant_type", "tenant_id", "type", "id"),
        Index("ix_events_tenant_member", "tenant_id", "member_id", "id"),
        Index("ix_events_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    member_id: Mapped[str | None] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebhookEndpoint(Base):
    """Where a tenant wants its events POSTed, and the secret that signs them (sealed)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500), default="")
    # Event types delivered here; empty: every type.
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    secret: Mapped[str] = mapped_column(Text)
    # After a rotation the old secret signs beside the new one until previous_secret_until.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    # The first failed attempt since the last success (None while healthy).
    failing_since: Mapped[datetime | None]
    # One worker delivers an endpoint at a time, in order: the lease it holds.
    lease_until: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event for one endpoint: pending until a 2xx, with its attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_pk"),
        # The endpoint's head of line: its oldest pending event.
        Index("ix_webhook_deliveries_line", "endpoint_id", "state", "event_pk"),
        # The sweep: pending deliveries whose time has come.
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_pk: Mapped[int] = mapped_column(
        BigId, ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(12))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None]
    # The latest attempts, newest last: {at, status, durationMs, error}.
    history: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncRun(Base):
    """One sync of one connection, as it ended (the last 100 per connection are kept)."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_connection", "connection_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(BigId, ForeignKey("connections.id"))
    trigger: Mapped[str] = mapped_column(
        String(20)
    )  # initial | scheduled | manual | re-established
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))  # the syncStatus it ended with
    # Per type: {"added": n, "updated": n}.
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    throttled_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    errors: Mapped[list[Any]] = mapped_column(default=list)


class SigningKey(Base):
    """One of tether's own signing keys, for ``private_key_jwt`` client authentication
    (RFC 7523, SMART "client-confidential-asymmetric"); :mod:`tether.signing` manages them.

    ``id`` is the key's ``kid`` (its RFC 7638 thumbprint). The private key is sealed by the
    vault (:mod:`tether.sealed`); the public JWK is served at ``/.well-known/jwks.json`` until
    ``unpublish_at``. A key signs from ``active_from`` until ``retired_at``.
    """

    __tablename__ = "signing_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10))
    public_jwk: Mapped[dict[str, Any]] = mapped_column()
    private_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active_from: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    unpublish_at: Mapped[datetime | None]
