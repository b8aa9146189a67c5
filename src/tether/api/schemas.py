"""Wire shapes of the REST API (camelCase, as DESIGN.md names the fields)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from tether.accounts.members import MemberView
from tether.accounts.tenants import TenantView
from tether.audit import AuditEventView
from tether.connections.source_health import SourceHealth
from tether.connections.views import ConnectionView, StatusUpdate, TenantConnectionView
from tether.domain import Category, SourceType, Status, SyncStatus
from tether.store.models import DataSource


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class MemberCreate(Wire):
    external_id: str = Field(min_length=1, max_length=200, description="the tenant's own id")


class MemberOut(Wire):
    id: str
    external_id: str
    created: datetime
    disabled: bool

    @classmethod
    def of(cls, member: MemberView) -> MemberOut:
        return cls(
            id=member.id,
            external_id=member.external_id,
            created=member.created,
            disabled=member.disabled,
        )


class MemberList(Wire):
    items: list[MemberOut]
    next_after: str | None


class MemberTokenOut(Wire):
    token: str
    token_type: str = "Bearer"
    expires_at: datetime


class AddressOut(Wire):
    line: str | None
    city: str | None
    state: str | None
    zip: str | None


class DataSourceOut(Wire):
    id: str
    name: str
    category: Category
    type: SourceType
    aliases: list[str]
    address: AddressOut
    lat: float | None
    lon: float | None
    retired: bool
    distance_miles: float | None = None

    @classmethod
    def of(cls, source: DataSource, distance: float | None = None) -> DataSourceOut:
        return cls(
            id=source.id,
            name=source.name,
            category=Category(source.category),
            type=SourceType(source.type),
            aliases=list(source.aliases),
            address=AddressOut(
                line=source.address, city=source.city, state=source.state, zip=source.zip
            ),
            lat=source.lat,
            lon=source.lon,
            retired=source.retired,
            distance_miles=distance,
        )


class SourceHealthOut(Wire):
    data_source_id: str
    status: Literal["ok", "degraded", "unknown"] = Field(
        description="degraded: failing for everyone; unknown: no request in the last hour"
    )
    degraded_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    throttled_until: datetime | None = Field(
        description="while a 429's Retry-After is still running"
    )
    requests_last_hour: int
    failures_last_hour: int = Field(description="5xx, timeouts and network errors")
    error_rate_last_hour: float | None
    throttled_last_hour: int = Field(description="429 answers")
    refused_last_hour: int = Field(description="401 and 403 answers")
    token_failures_last_hour: int
    failing_connections: int = Field(
        description="connections whose last sync, in the last 10 minutes, failed because "
        "the source was down"
    )

    @classmethod
    def of(cls, health: SourceHealth) -> SourceHealthOut:
        return cls(**asdict(health))


class DataSourcePage(Wire):
    items: list[DataSourceOut]
    total: int
    limit: int
    offset: int


class Coding(Wire):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(Wire):
    text: str | None = None
    coding: list[Coding] = Field(default_factory=list)


class MemberConnectionOut(Wire):
    """A MemberConnection (DESIGN.md), plus resource counts and the next scheduled sync."""

    id: str
    name: str
    category: Category
    type: SourceType
    status: Status
    sync_status: SyncStatus
    sync_errors: list[CodeableConcept]
    created: datetime
    status_updated: datetime
    last_synced: datetime | None
    resource_counts: dict[str, int]
    next_sync: datetime | None
    authorization_expires: datetime | None = Field(
        default=None,
        description="when the grant ends at the source (reconnect before), where it says",
    )
    not_shared: list[str] = Field(
        default_factory=list,
        description="resource types the member did not share (a narrower grant than asked)",
    )

    @classmethod
    def of(cls, view: ConnectionView) -> MemberConnectionOut:
        return cls.model_validate(_wire_fields(view), from_attributes=True)


def _wire_fields(view: ConnectionView) -> dict[str, Any]:
    """The view's fields that go on the wire, for pydantic-core to validate in one call (the
    sync errors' dataclasses read as attributes): a quarter of the cost of building each
    field's model in Python, for a tenant's page of 50 to 200."""
    wire = MemberConnectionOut.model_fields  # not the view's moves: those are for the pages
    return {name: value for name, value in vars(view).items() if name in wire}


class TenantConnectionOut(MemberConnectionOut):
    """A connection in the tenant's list across members: whose it is, then the member's view."""

    member_id: str
    external_id: str

    @classmethod
    def of_tenant(cls, item: TenantConnectionView) -> TenantConnectionOut:
        fields = _wire_fields(item.connection)
        fields["member_id"] = item.member_id
        fields["external_id"] = item.external_id
        return cls.model_validate(fields, from_attributes=True)


class TenantConnectionPage(Wire):
    """``GET /v1/connections`` with the API key: a page of the tenant's connections."""

    items: list[TenantConnectionOut]
    next_after: int | None = Field(description="pass as `after` for the next page")


class StatusUpdateOut(Wire):
    """What disconnectConnection and deleteConnection answer."""

    status: Status
    status_updated: datetime
    sync_status: SyncStatus

    @classmethod
    def of(cls, update: StatusUpdate) -> StatusUpdateOut:
        return cls(
            status=update.status,
            status_updated=update.status_updated,
            sync_status=update.sync_status,
        )


class AuditEventOut(Wire):
    id: int
    at: datetime
    member_id: str | None
    connection_id: str | None
    action: str
    actor: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEventView) -> AuditEventOut:
        return cls(**asdict(event))


class AuditEventPage(Wire):
    items: list[AuditEventOut]
    next_after: int | None


class CreateConnectionIn(Wire):
    connection_id: str = Field(min_length=1, max_length=100)
    username: str = Field(min_length=1, max_length=500)
    password: SecretStr = Field(min_length=1, max_length=500)


class OauthUrlIn(Wire):
    return_url: str | None = Field(
        default=None, max_length=2000, description="must be on the tenant's allow-list"
    )


class OauthUrlOut(Wire):
    redirect_url: str


class AppLinkIn(Wire):
    display: Literal["popup", "redirect"] = Field(
        default="popup",
        description="how the page opens a source's sign-in: a popup, or this window "
        "(for webviews that cannot open popups)",
    )


class AppLinkOut(Wire):
    url: str = Field(description="open it in the member's browser or webview; it works once")
    expires_at: datetime


class Problem(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = Field(default=None, alias="requestId")
    code: str | None = None
    errors: list[dict[str, Any]] | None = None


class TenantOut(Wire):
    id: str
    name: str
    return_urls: list[str] = Field(description="allow-listed return URLs (RFC 8252 §7)")
    allowed_origins: list[str] = Field(
        description="browser origins of the tenant's apps: the completion page's postMessage "
        "targets and GraphQL CORS"
    )
    created: datetime
    disabled: bool

    @classmethod
    def of(cls, tenant: TenantView) -> TenantOut:
        return cls(
            id=tenant.id,
            name=tenant.name,
            return_urls=list(tenant.return_urls),
            allowed_origins=list(tenant.allowed_origins),
            created=tenant.created,
            disabled=tenant.disabled,
        )


class TenantUpdate(Wire):
    """Only the fields given change; each list replaces the old one. The rules (docs/api.md)
    are checked by the service, so a refused value is a 400 problem naming its field."""

    name: str | None = Field(default=None, description="1 to 200 characters")
    return_urls: list[str] | None = Field(
        default=None,
        description="https, loopback http, or a private-use scheme in reverse-domain form "
        "(com.example.app:/path); at most 20, no duplicates, no fragments",
    )
    allowed_origins: list[str] | None = Field(
        default=None, description="scheme://host[:port], at most 20, no duplicates"
    )


# ---------------------------------------------------------------- events and webhooks
EVENT_TYPE = Literal[
    "connection.connected",
    "connection.expired",
    "connection.disconnected",
    "connection.error",
    "connection.access_ended",
    "connection.deleted",
    "connection.data_deleted",
    "connection.expiring",
    "sync.completed",
    "sync.failed",
    "webhook_endpoint.disabled",
]


class EventOut(BaseModel):
    """The Standard Webhooks payload, as delivered: ``{type, timestamp, data}``."""

    model_config = ConfigDict(extra="forbid")

    type: str
    timestamp: datetime
    data: dict[str, Any] = Field(
        description="eventId, tenantId, memberId, externalId, connectionId, status, "
        "syncStatus, syncErrors, statusUpdated, lastSynced; sync events add trigger and "
        "resources (added/updated per type); never tokens or health data"
    )

    @classmethod
    def of(cls, payload: dict[str, Any]) -> EventOut:
        return cls(**payload)


class EventPage(Wire):
    items: list[EventOut]
    next_after: str | None = Field(description="pass as `after` for the next page")


class WebhookEndpointIn(Wire):
    url: str = Field(min_length=1, max_length=2000, description="https URL that receives events")
    events: list[EVENT_TYPE] | None = Field(
        default=None, max_length=20, description="the event types to send (default: all)"
    )
    description: str = Field(default="", max_length=500)


class WebhookEndpointPatch(Wire):
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[EVENT_TYPE] | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=500)
    disabled: bool | None = Field(
        default=None, description="false re-enables a disabled endpoint and resumes its line"
    )


class WebhookEndpointOut(Wire):
    id: str
    url: str
    description: str
    events: list[str] = Field(description="event types sent here; empty: all")
    disabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created: datetime
    updated: datetime
    previous_secret_until: datetime | None = Field(
        description="while set, the previous secret still signs beside the current one"
    )

    @classmethod
    def of(cls, view: Any) -> WebhookEndpointOut:
        return cls(
            id=view.id,
            url=view.url,
            description=view.description,
            events=list(view.events),
            disabled=view.disabled,
            disabled_reason=view.disabled_reason,
            disabled_at=view.disabled_at,
            failing_since=view.failing_since,
            created=view.created,
            updated=view.updated,
            previous_secret_until=view.previous_secret_until,
        )


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(description="the signing secret (whsec_…): shown only now")


class WebhookAttemptOut(Wire):
    at: datetime
    status: int | None
    duration_ms: int
    error: str | None


class WebhookDeliveryOut(Wire):
    id: int
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt: datetime | None
    last_attempt: datetime | None
    last_status: int | None
    last_error: str | None
    last_duration_ms: int | None
    delivered: datetime | None
    created: datetime
    history: list[WebhookAttemptOut]

    @classmethod
    def of(cls, view: Any) -> WebhookDeliveryOut:
        return cls(
            id=view.id,
            event_id=view.event_id,
            event_type=view.event_type,
            state=view.state,
            attempts=view.attempts,
            next_attempt=view.next_attempt,
            last_attempt=view.last_attempt,
            last_status=view.last_status,
            last_error=view.last_error,
            last_duration_ms=view.last_duration_ms,
            delivered=view.delivered,
            created=view.created,
            history=[
                WebhookAttemptOut(
                    at=e["at"], status=e["status"], duration_ms=e["durationMs"], error=e["error"]
                )
                for e in view.history
            ],
        )


class WebhookDeliveryPage(Wire):
    items: list[WebhookDeliveryOut]
    next_after: int | None


class ReplayIn(Wire):
    since: AwareDatetime = Field(
        description="deliver again every event committed since this moment (with its offset)"
    )


class ReplayOut(Wire):
    queued: int = Field(description="events (replay) or endpoints (redeliver) queued")


class SyncRunOut(Wire):
    id: int
    trigger: Literal["initial", "scheduled", "manual", "re-established"]
    started: datetime
    finished: datetime
    outcome: str
    resources: dict[str, dict[str, int]] = Field(description="per type: added, updated")
    pages: int
    requests: int
    retries: int
    throttled_seconds: float
    errors: list[CodeableConcept]

    @classmethod
    def of(cls, view: Any) -> SyncRunOut:
        return cls(
            id=view.id,
            trigger=view.trigger,
            started=view.started,
            finished=view.finished,
            outcome=view.outcome,
            resources={k: dict(v) for k, v in view.counts.items()},
            pages=view.pages,
            requests=view.requests,
            retries=view.retries,
            throttled_seconds=view.throttled_seconds,
            errors=[CodeableConcept.model_validate(e) for e in view.errors],
        )
