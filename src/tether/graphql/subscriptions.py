"""The member's connections as FHIR-like Subscription resources: the health SDK's view.

The SDK reads connections through Subscriptions (docs/sdk-compat.md):

- 1.70 asks ``subscription_subscription`` next to ``getMemberConnections`` and takes from each
  resource only its ``service_slug`` and, in its ``subscriptionStatus``, the sync errors and
  the ``data-connection-status`` extension;
- 2.0 asks only ``subscriptions(_source: {value: …})`` and builds each connection from the
  first ``subscriptionStatus``: its extensions (below), ``meta.lastUpdated`` (statusUpdated),
  the ``created-date`` notification event (created) and ``error`` (the sync errors). An entry
  lacking id, name, category, type or created is dropped by the SDK, so every one is always
  sent.

Both fields answer the same resources, built here from the read side
(:func:`tether.connections.views.member_connections`) and nothing else.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from tether.connections.views import ConnectionView, member_connections
from tether.domain import Category
from tether.errors import InvalidRequest
from tether.graphql.context import Context
from tether.graphql.types import CodeableConcept, optional_timestamp, timestamp

Info = strawberry.Info[Context, None]

# The meta.source of every connection subscription: the value the SDK 2.0 searches by.
CONNECTIONS_SOURCE = "https://icanbwell.com/proa"
MAX_SOURCE_VALUES = 20

# The extension ids the SDK reads (SDK-WIRE-2.md); each url is tether's.
SERVICE_SLUG = "service_slug"  # the connection id
CONNECTION_NAME = "connection_name"
CONNECTION_TYPE = "connection_type"  # the category: "hapi" means BASIC to the SDK
SOURCE_TYPE = "category"  # the source type (CLINICAL, INSURANCE, …)
TOKEN_STATUS = "token-status"  # status
CONNECTION_STATUS_EXTENSION = "data-connection-status"  # syncStatus
DATA_LAST_UPDATED = "data-last-updated"  # lastSynced
CREATED_EVENT = "created-date"  # the notification event carrying created

# connection_type: the SDK reads "hapi" (any case) as BASIC and any other value as OAUTH.
CONNECTION_TYPES = {Category.BASIC: "hapi", Category.OAUTH: "oauth", Category.IDENTITY: "identity"}


def extension_url(extension_id: str) -> str:
    return f"urn:tether:extension:{extension_id}"


CONNECTION_STATUS_URL = extension_url(CONNECTION_STATUS_EXTENSION)


@strawberry.type
class Meta:
    source: str | None = None
    last_updated: str | None = None


@strawberry.type
class SubscriptionExtension:
    id: str | None
    url: str | None
    value_string: str | None

    @classmethod
    def of(cls, extension_id: str, value: str) -> SubscriptionExtension:
        return cls(id=extension_id, url=extension_url(extension_id), value_string=value)


@strawberry.type(description="A notification event; created-date carries when it was created.")
class NotificationEvent:
    id: str | None
    timestamp: str | None


@strawberry.type
class SubscriptionStatus:
    meta: Meta
    error: list[CodeableConcept]
    extension: list[SubscriptionExtension]
    notification_event: list[NotificationEvent]


@strawberry.type(description="One connection of the member, as the SDK reads it.")
class SubscriptionResource:
    id: str = strawberry.field(description="the connection id")
    service_slug: str = strawberry.field(name="service_slug", description="the connection id")
    meta: Meta
    subscription_status: list[SubscriptionStatus]

    @classmethod
    def of(cls, view: ConnectionView) -> SubscriptionResource:
        updated = timestamp(view.status_updated)
        extensions = [
            SubscriptionExtension.of(SERVICE_SLUG, view.id),
            SubscriptionExtension.of(CONNECTION_NAME, view.name),
            SubscriptionExtension.of(CONNECTION_TYPE, CONNECTION_TYPES[view.category]),
            SubscriptionExtension.of(SOURCE_TYPE, view.type.value),
            SubscriptionExtension.of(TOKEN_STATUS, view.status.value),
            SubscriptionExtension.of(CONNECTION_STATUS_EXTENSION, view.sync_status.value),
        ]
        last_synced = optional_timestamp(view.last_synced)
        if last_synced is not None:
            extensions.append(SubscriptionExtension.of(DATA_LAST_UPDATED, last_synced))
        status = SubscriptionStatus(
            meta=Meta(last_updated=updated),
            error=[CodeableConcept.of(e) for e in view.sync_errors],
            extension=extensions,
            notification_event=[
                NotificationEvent(id=CREATED_EVENT, timestamp=timestamp(view.created))
            ],
        )
        return cls(
            id=view.id,
            service_slug=view.id,
            meta=Meta(source=CONNECTIONS_SOURCE, last_updated=updated),
            subscription_status=[status],
        )


@strawberry.type
class SubscriptionEntry:
    resource: SubscriptionResource


@strawberry.type(description="The member's connections as Subscription resources.")
class SubscriptionBundle:
    entry: list[SubscriptionEntry]

    @classmethod
    def of(cls, views: list[ConnectionView]) -> SubscriptionBundle:
        return cls(entry=[SubscriptionEntry(resource=SubscriptionResource.of(v)) for v in views])


@strawberry.input(description="Values that are excluded.")
class SearchStringValues:
    value: str | None = None
    values: list[str] | None = None


@strawberry.input(description="A FHIR string search: equal to value or any of values, …")
class SearchString:
    value: str | None = None
    values: list[str] | None = None
    not_equals: SearchStringValues | None = None
    missing: bool | None = None
    above: str | None = None
    below: str | None = None
    search_type: str | None = None


def _listed(value: str | None, values: list[str] | None) -> list[str]:
    listed = ([value] if value is not None else []) + list(values or ())
    if len(listed) > MAX_SOURCE_VALUES:
        raise InvalidRequest(f"_source: at most {MAX_SOURCE_VALUES} values", code="INVALID_FILTER")
    return listed


def source_matches(search: SearchString | None, source: str) -> bool:
    """Whether a subscription whose meta.source is ``source`` fits the ``_source`` search.

    ``value``/``values`` (equal to any), ``notEquals`` and ``missing`` are answered; ordering
    (``above``, ``below``) and other search types mean nothing for a URI and are refused.
    """
    if search is None:
        return True
    for name, given in (
        ("above", search.above),
        ("below", search.below),
        ("searchType", search.search_type),
    ):
        if given is not None:
            raise InvalidRequest(
                f"_source: {name} is not supported (search by value, values, notEquals or missing)",
                code="INVALID_FILTER",
            )
    wanted = _listed(search.value, search.values)
    excluded = (
        _listed(search.not_equals.value, search.not_equals.values) if search.not_equals else []
    )
    if search.missing:
        return False  # every subscription has a source
    return (not wanted or source in wanted) and source not in excluded


@strawberry.type
class SubscriptionQuery:
    @strawberry.field(
        name="subscription_subscription",
        description="Each connection's sync errors and syncStatus (the SDK 1.70's view).",
    )
    async def subscription_subscription(self, info: Info) -> SubscriptionBundle | None:
        member = await info.context.member()
        views = await info.context.call(member_connections, info.context.runtime, member=member)
        return SubscriptionBundle.of(views)

    @strawberry.field(
        description="The member's connections as Subscription resources (the SDK 2.0's "
        f"getMemberConnections); every one has meta.source {CONNECTIONS_SOURCE}."
    )
    async def subscriptions(
        self,
        info: Info,
        source: Annotated[
            SearchString | None,
            strawberry.argument(description="a search on meta.source"),
        ] = None,
    ) -> SubscriptionBundle | None:
        member = await info.context.member()
        if not source_matches(source, CONNECTIONS_SOURCE):
            return SubscriptionBundle(entry=[])
        views = await info.context.call(member_connections, info.context.runtime, member=member)
        return SubscriptionBundle.of(views)
