"""GraphQL object types for the connection operations (names and shapes from DESIGN.md).

Field names are those of REST (camelCase) and of the health SDK's wire interface; the two
type names that interface fixes are ``CodeableConcept`` and ``Coding``. Timestamps are
ISO 8601 strings, rendered exactly as REST renders them.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from pydantic import TypeAdapter

from tether.connections import views
from tether.domain import Category, SourceType, Status, SyncStatus
from tether.store.models import DataSource as DataSourceRow

ConnectionCategory = strawberry.enum(Category, name="ConnectionCategory")
DataConnectionType = strawberry.enum(SourceType, name="DataConnectionType")
DataConnectionStatus = strawberry.enum(Status, name="DataConnectionStatus")
DataSyncStatus = strawberry.enum(SyncStatus, name="SyncStatus")

_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(datetime)

# Every tether connection is made directly with its source (no aggregator in between).
IS_DIRECT = True


def timestamp(value: datetime) -> str:
    """The same string REST (pydantic) renders for ``value``."""
    rendered: str = _TIMESTAMP.dump_python(value, mode="json")
    return rendered


def optional_timestamp(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)


@strawberry.type(name="Coding")
class Coding:
    id: str | None = strawberry.field(default=None, description="always null")
    system: str | None = None
    code: str | None = None
    display: str | None = None


@strawberry.type(name="CodeableConcept", description="A sync error: {text, coding[]}.")
class CodeableConcept:
    text: str | None
    coding: list[Coding]
    id: str | None = strawberry.field(default=None, description="always null")

    @classmethod
    def of(cls, value: views.CodeableConcept) -> CodeableConcept:
        return cls(
            text=value.text,
            coding=[Coding(system=c.system, code=c.code, display=c.display) for c in value.coding],
        )


@strawberry.type(description="One connection of the member (getMemberConnections).")
class MemberConnection:
    id: str = strawberry.field(description="the data source's id: the connectionId")
    name: str
    category: Category
    type: SourceType
    status: Status
    sync_status: SyncStatus
    sync_errors: list[CodeableConcept]
    created: str
    status_updated: str
    last_synced: str | None
    is_direct: bool
    integration_type: str | None = strawberry.field(
        description="not used by tether (always null); accepted as a filter and ignored"
    )
    authorization_expires: str | None = strawberry.field(
        default=None,
        description="when the grant ends at the source (reconnect before), where it says",
    )
    not_shared: list[str] = strawberry.field(
        default_factory=list,
        description="resource types the member did not share (a narrower grant than asked)",
    )

    @classmethod
    def of(cls, view: views.ConnectionView) -> MemberConnection:
        return cls(
            id=view.id,
            name=view.name,
            category=view.category,
            type=view.type,
            status=view.status,
            sync_status=view.sync_status,
            sync_errors=[CodeableConcept.of(e) for e in view.sync_errors],
            created=timestamp(view.created),
            status_updated=timestamp(view.status_updated),
            last_synced=optional_timestamp(view.last_synced),
            is_direct=IS_DIRECT,
            integration_type=None,
            authorization_expires=optional_timestamp(view.authorization_expires),
            not_shared=list(view.not_shared),
        )


@strawberry.type(description="One entry of the data-source directory (getDataSource).")
class DataSource:
    id: str
    name: str
    category: Category
    type: SourceType
    is_direct: bool
    integration_type: str | None
    retired: bool

    @classmethod
    def of(cls, source: DataSourceRow) -> DataSource:
        return cls(
            id=source.id,
            name=source.name,
            category=Category(source.category),
            type=SourceType(source.type),
            is_direct=IS_DIRECT,
            integration_type=None,
            retired=source.retired,
        )


@strawberry.type(name="ConnectionStatusUpdate", description="disconnect/deleteConnection.")
class StatusUpdate:
    status: Status
    status_updated: str
    sync_status: SyncStatus

    @classmethod
    def of(cls, update: views.StatusUpdate) -> StatusUpdate:
        return cls(
            status=update.status,
            status_updated=timestamp(update.status_updated),
            sync_status=update.sync_status,
        )


@strawberry.type
class OauthUrl:
    redirect_url: str = strawberry.field(
        description="absolute, single-use launch link; expires within TETHER_LAUNCH_TTL seconds"
    )
