"""Wire shapes of the REST API (camelCase, as DESIGN.md names the fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from tether.connections.manage import StatusUpdate
from tether.domain import Category, SourceType, Status, SyncStatus
from tether.store.models import AuditEvent, Connection, DataSource, Member


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
    def of(cls, member: Member) -> MemberOut:
        return cls(
            id=member.id,
            external_id=member.external_id,
            created=member.created_at,
            disabled=member.disabled_at is not None,
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

    @classmethod
    def of(cls, conn: Connection, source: DataSource) -> MemberConnectionOut:
        return cls(
            id=source.id,
            name=source.name,
            category=Category(source.category),
            type=SourceType(source.type),
            status=Status(conn.status),
            sync_status=SyncStatus(conn.sync_status),
            sync_errors=[CodeableConcept.model_validate(e) for e in conn.sync_errors],
            created=conn.created_at,
            status_updated=conn.status_updated_at,
            last_synced=conn.last_synced_at,
            resource_counts={k: int(v) for k, v in (conn.resource_counts or {}).items()},
            next_sync=conn.next_sync_at if conn.status == Status.CONNECTED else None,
        )


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
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            at=event.at,
            member_id=event.member_id,
            connection_id=event.data_source_id,
            action=event.action,
            actor=event.actor,
            from_status=event.from_status,
            to_status=event.to_status,
            detail=event.detail,
        )


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
