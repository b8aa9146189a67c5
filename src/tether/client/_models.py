"""Typed results: frozen dataclasses in the shapes of the REST API, with snake_case names.

Every class has ``from_json`` that reads the camelCase wire shape (docs/api.md). Fields the
server adds later are ignored, so an older SDK keeps working against a newer server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    """How a data source authenticates the member."""

    OAUTH = "OAUTH"
    BASIC = "BASIC"
    IDENTITY = "IDENTITY"


class SourceType(StrEnum):
    """What kind of organisation a data source is."""

    CLINICAL = "CLINICAL"
    INSURANCE = "INSURANCE"
    LAB = "LAB"
    PHARMACY = "PHARMACY"
    PRACTITIONER = "PRACTITIONER"


class Status(StrEnum):
    """The authorization's state (``status``)."""

    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    EXPIRED = "EXPIRED"
    ERROR = "ERROR"
    DELETED = "DELETED"
    ACCESS_ENDED = "ACCESS_ENDED"


class SyncStatus(StrEnum):
    """The data pipeline's state (``syncStatus``)."""

    PENDING = "PENDING"
    RETRIEVING = "RETRIEVING"
    RETRIEVED = "RETRIEVED"
    ERROR = "ERROR"
    DELETING = "DELETING"
    DATA_DELETED = "DATA_DELETED"


def parse_datetime(value: Any) -> datetime:
    """An ISO 8601 timestamp from the wire (``Z`` or an offset) as an aware datetime."""
    if not isinstance(value, str):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    return datetime.fromisoformat(value)


def _optional_datetime(value: Any) -> datetime | None:
    return None if value is None else parse_datetime(value)


@dataclass(frozen=True)
class Coding:
    system: str | None = None
    code: str | None = None
    display: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Coding:
        return cls(system=data.get("system"), code=data.get("code"), display=data.get("display"))


@dataclass(frozen=True)
class CodeableConcept:
    """A sync error: ``text`` for people, ``coding`` (system ``urn:tether:sync-error``)."""

    text: str | None = None
    coding: tuple[Coding, ...] = ()

    @property
    def code(self) -> str | None:
        """The first coding's code, e.g. ``AUTHORIZATION_EXPIRED``."""
        return self.coding[0].code if self.coding else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CodeableConcept:
        return cls(
            text=data.get("text"),
            coding=tuple(Coding.from_json(c) for c in data.get("coding") or ()),
        )


@dataclass(frozen=True)
class MemberConnection:
    """One of the member's connections (getMemberConnections). ``id`` is the data source's id."""

    id: str
    name: str
    category: Category
    type: SourceType
    status: Status
    sync_status: SyncStatus
    sync_errors: tuple[CodeableConcept, ...]
    created: datetime
    status_updated: datetime
    last_synced: datetime | None
    resource_counts: dict[str, int] = field(default_factory=dict)
    next_sync: datetime | None = None
    # When the grant ends at the source (reconnect before), where the source says.
    authorization_expires: datetime | None = None
    # Resource types the member did not share (a narrower grant than asked).
    not_shared: tuple[str, ...] = ()

    @property
    def sync_error_codes(self) -> list[str]:
        return [e.code for e in self.sync_errors if e.code]

    @property
    def total_resources(self) -> int:
        return sum(self.resource_counts.values())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MemberConnection:
        return cls(
            id=data["id"],
            name=data["name"],
            category=Category(data["category"]),
            type=SourceType(data["type"]),
            status=Status(data["status"]),
            sync_status=SyncStatus(data["syncStatus"]),
            sync_errors=tuple(CodeableConcept.from_json(e) for e in data.get("syncErrors") or ()),
            created=parse_datetime(data["created"]),
            status_updated=parse_datetime(data["statusUpdated"]),
            last_synced=_optional_datetime(data.get("lastSynced")),
            resource_counts={str(k): int(v) for k, v in (data.get("resourceCounts") or {}).items()},
            next_sync=_optional_datetime(data.get("nextSync")),
            authorization_expires=_optional_datetime(data.get("authorizationExpires")),
            not_shared=tuple(str(t) for t in data.get("notShared") or ()),
        )


@dataclass(frozen=True)
class Address:
    line: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Address:
        data = data or {}
        return cls(
            line=data.get("line"),
            city=data.get("city"),
            state=data.get("state"),
            zip=data.get("zip"),
        )


@dataclass(frozen=True)
class DataSource:
    """One entry of the data-source directory (getDataSource, searchDataSources)."""

    id: str
    name: str
    category: Category
    type: SourceType
    aliases: tuple[str, ...] = ()
    address: Address = Address()
    lat: float | None = None
    lon: float | None = None
    retired: bool = False
    distance_miles: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataSource:
        return cls(
            id=data["id"],
            name=data["name"],
            category=Category(data["category"]),
            type=SourceType(data["type"]),
            aliases=tuple(data.get("aliases") or ()),
            address=Address.from_json(data.get("address")),
            lat=data.get("lat"),
            lon=data.get("lon"),
            retired=bool(data.get("retired", False)),
            distance_miles=data.get("distanceMiles"),
        )


@dataclass(frozen=True)
class DataSourcePage:
    """A page of searchDataSources: ``total`` matches in all, ``limit`` from ``offset``.

    ``total_capped`` is true when a server that counts only up to a cap says there are more
    than ``total`` (False when the server does not say)."""

    items: tuple[DataSource, ...]
    total: int
    limit: int
    offset: int
    total_capped: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataSourcePage:
        return cls(
            items=tuple(DataSource.from_json(s) for s in data["items"]),
            total=int(data["total"]),
            limit=int(data["limit"]),
            offset=int(data["offset"]),
            total_capped=bool(data.get("totalCapped", False)),
        )


@dataclass(frozen=True)
class OauthUrl:
    """getOauthUrl: an absolute, single-use launch link that expires within minutes."""

    redirect_url: str = field(repr=False)  # a bearer capability: kept out of reprs and logs

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OauthUrl:
        return cls(redirect_url=data["redirectUrl"])


@dataclass(frozen=True)
class StatusUpdate:
    """What disconnectConnection and deleteConnection answer."""

    status: Status
    status_updated: datetime
    sync_status: SyncStatus

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusUpdate:
        return cls(
            status=Status(data["status"]),
            status_updated=parse_datetime(data["statusUpdated"]),
            sync_status=SyncStatus(data["syncStatus"]),
        )


@dataclass(frozen=True)
class Member:
    id: str
    external_id: str
    created: datetime
    disabled: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Member:
        return cls(
            id=data["id"],
            external_id=data["externalId"],
            created=parse_datetime(data["created"]),
            disabled=bool(data["disabled"]),
        )


@dataclass(frozen=True)
class MemberPage:
    """A page of the tenant's members; pass ``next_after`` as ``after`` for the next one."""

    items: tuple[Member, ...]
    next_after: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MemberPage:
        return cls(
            items=tuple(Member.from_json(m) for m in data["items"]),
            next_after=data.get("nextAfter"),
        )


@dataclass(frozen=True)
class MemberToken:
    """A short-lived member token for the member's app or ``ConnectionManager``."""

    token: str = field(repr=False)
    token_type: str
    expires_at: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MemberToken:
        return cls(
            token=data["token"],
            token_type=data.get("tokenType", "Bearer"),
            expires_at=parse_datetime(data["expiresAt"]),
        )


@dataclass(frozen=True)
class AuditEvent:
    """One lifecycle change in the tenant's audit trail."""

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
    def from_json(cls, data: dict[str, Any]) -> AuditEvent:
        return cls(
            id=int(data["id"]),
            at=parse_datetime(data["at"]),
            member_id=data.get("memberId"),
            connection_id=data.get("connectionId"),
            action=data["action"],
            actor=data["actor"],
            from_status=data.get("fromStatus"),
            to_status=data.get("toStatus"),
            detail=dict(data.get("detail") or {}),
        )


@dataclass(frozen=True)
class AuditEventPage:
    items: tuple[AuditEvent, ...]
    next_after: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditEventPage:
        return cls(
            items=tuple(AuditEvent.from_json(e) for e in data["items"]),
            next_after=data.get("nextAfter"),
        )


# ---------------------------------------------------------------- the tenant's wider view
@dataclass(frozen=True)
class TenantConnection:
    """A connection as the tenant sees it across members: whose it is, and the connection."""

    member_id: str
    external_id: str
    connection: MemberConnection

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TenantConnection:
        return cls(
            member_id=data["memberId"],
            external_id=data["externalId"],
            connection=MemberConnection.from_json(data),
        )


@dataclass(frozen=True)
class TenantConnectionPage:
    items: tuple[TenantConnection, ...]
    next_after: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TenantConnectionPage:
        return cls(
            items=tuple(TenantConnection.from_json(c) for c in data["items"]),
            next_after=data.get("nextAfter"),
        )


@dataclass(frozen=True)
class SyncRun:
    """One sync of a connection (its history): why it ran, how it ended, what it changed."""

    id: int
    trigger: str  # initial, scheduled, manual, re-established
    started: datetime
    finished: datetime
    outcome: str  # the syncStatus it ended with
    resources: dict[str, dict[str, int]]  # per type: {"added": n, "updated": n}
    pages: int
    requests: int
    retries: int
    throttled_seconds: float
    errors: tuple[CodeableConcept, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SyncRun:
        return cls(
            id=int(data["id"]),
            trigger=data["trigger"],
            started=parse_datetime(data["started"]),
            finished=parse_datetime(data["finished"]),
            outcome=data["outcome"],
            resources={
                str(t): {str(k): int(v) for k, v in c.items()}
                for t, c in (data.get("resources") or {}).items()
            },
            pages=int(data.get("pages", 0)),
            requests=int(data.get("requests", 0)),
            retries=int(data.get("retries", 0)),
            throttled_seconds=float(data.get("throttledSeconds", 0.0)),
            errors=tuple(CodeableConcept.from_json(e) for e in data.get("errors") or ()),
        )


# ---------------------------------------------------------------- events and webhooks
@dataclass(frozen=True)
class Event:
    """An event as delivered: ``type``, ``timestamp`` and ``data`` (``data["eventId"]``...)."""

    type: str
    timestamp: datetime
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["eventId"])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        return cls(
            type=data["type"], timestamp=parse_datetime(data["timestamp"]), data=data["data"]
        )


@dataclass(frozen=True)
class EventPage:
    items: tuple[Event, ...]
    next_after: str | None  # an eventId: pass as ``after``

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventPage:
        return cls(
            items=tuple(Event.from_json(e) for e in data["items"]),
            next_after=data.get("nextAfter"),
        )


@dataclass(frozen=True)
class WebhookEndpoint:
    """A webhook endpoint. ``secret`` is set only by create and rotate (shown once)."""

    id: str
    url: str
    description: str
    events: tuple[str, ...]  # empty: every type
    disabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created: datetime
    updated: datetime
    previous_secret_until: datetime | None
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookEndpoint:
        return cls(
            id=data["id"],
            url=data["url"],
            description=data.get("description") or "",
            events=tuple(data.get("events") or ()),
            disabled=bool(data["disabled"]),
            disabled_reason=data.get("disabledReason"),
            disabled_at=_optional_datetime(data.get("disabledAt")),
            failing_since=_optional_datetime(data.get("failingSince")),
            created=parse_datetime(data["created"]),
            updated=parse_datetime(data["updated"]),
            previous_secret_until=_optional_datetime(data.get("previousSecretUntil")),
            secret=data.get("secret"),
        )


@dataclass(frozen=True)
class WebhookAttempt:
    at: datetime
    status: int | None
    duration_ms: int
    error: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookAttempt:
        return cls(
            at=parse_datetime(data["at"]),
            status=data.get("status"),
            duration_ms=int(data.get("durationMs", 0)),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class WebhookDelivery:
    """One event for one endpoint: ``pending``, ``delivered`` or ``failed``, with attempts."""

    id: int
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt: datetime | None
    last_attempt: datetime | None
    last_status: int | None
    last_error: str | None
    last_duration_ms: int | None
    delivered: datetime | None
    created: datetime
    history: tuple[WebhookAttempt, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookDelivery:
        return cls(
            id=int(data["id"]),
            event_id=data["eventId"],
            event_type=data["eventType"],
            state=data["state"],
            attempts=int(data["attempts"]),
            next_attempt=_optional_datetime(data.get("nextAttempt")),
            last_attempt=_optional_datetime(data.get("lastAttempt")),
            last_status=data.get("lastStatus"),
            last_error=data.get("lastError"),
            last_duration_ms=data.get("lastDurationMs"),
            delivered=_optional_datetime(data.get("delivered")),
            created=parse_datetime(data["created"]),
            history=tuple(WebhookAttempt.from_json(a) for a in data.get("history") or ()),
        )


@dataclass(frozen=True)
class WebhookDeliveryPage:
    items: tuple[WebhookDelivery, ...]
    next_after: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookDeliveryPage:
        return cls(
            items=tuple(WebhookDelivery.from_json(d) for d in data["items"]),
            next_after=data.get("nextAfter"),
        )
