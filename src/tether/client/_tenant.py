"""``TenantClient``: the health app's server side, with a tenant API key."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import httpx

from tether.client import _exports as exports
from tether.client import _operations as ops
from tether.client._base import SyncClient
from tether.client._exports import DEFAULT_EXPORT_INTERVAL, DEFAULT_EXPORT_TIMEOUT, Export
from tether.client._models import (
    AuditEventPage,
    DataSource,
    DataSourcePage,
    EventPage,
    Member,
    MemberPage,
    MemberToken,
    SourceType,
    Status,
    SyncRun,
    SyncStatus,
    TenantConnectionPage,
    WebhookDeliveryPage,
    WebhookEndpoint,
)
from tether.client._transport import DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT

DEFAULT_MEMBER_PAGE = 50
DEFAULT_AUDIT_PAGE = 100


class TenantClient(SyncClient):
    """Members, member tokens, the audit trail, every member's connections, the event log and
    webhook endpoints, with the tenant's API key (``tk_…``).

    Keep the API key on the server; hand members the short-lived tokens of
    ``issue_member_token`` for ``ConnectionManager``. Same options as ``ConnectionManager``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            transport=transport,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )

    def create_member(self, external_id: str) -> Member:
        """Create a member for your own user id; idempotent (the existing one comes back)."""
        return self._sender.send(ops.create_member(external_id))

    def get_member(self, member_id: str) -> Member:
        return self._sender.send(ops.get_member(member_id))

    def list_members(
        self, limit: int = DEFAULT_MEMBER_PAGE, after: str | None = None
    ) -> MemberPage:
        """One page of members; pass the page's ``next_after`` as ``after`` for the next."""
        return self._sender.send(ops.list_members(limit, after))

    def issue_member_token(self, member_id: str) -> MemberToken:
        """A short-lived member token (not retried: each call mints one)."""
        return self._sender.send(ops.issue_member_token(member_id))

    def list_audit_events(
        self,
        limit: int = DEFAULT_AUDIT_PAGE,
        after: int | None = None,
        member_id: str | None = None,
    ) -> AuditEventPage:
        """Lifecycle changes, oldest first, optionally of one member."""
        return self._sender.send(ops.list_audit_events(limit, after, member_id))

    def get_data_source(self, connection_id: str) -> DataSource:
        return self._sender.send(ops.get_data_source(connection_id))

    def search_data_sources(
        self,
        query: str | None = None,
        type: SourceType | str | None = None,
        near: str | None = None,
        radius: float | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> DataSourcePage:
        return self._sender.send(ops.search_data_sources(query, type, near, radius, limit, offset))

    # ------------------------------------------------------------ connections across members
    def list_connections(
        self,
        status: Status | str | Iterable[Status | str] | None = None,
        sync_status: SyncStatus | str | Iterable[SyncStatus | str] | None = None,
        sync_error: str | None = None,
        member_id: str | None = None,
        external_id: str | None = None,
        connection_id: str | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> TenantConnectionPage:
        """The tenant's connections across members, keyset-paged (``next_after``), filtered
        (``sync_error`` is a code such as ``AUTHORIZATION_EXPIRED``)."""
        return self._sender.send(
            ops.list_tenant_connections(
                status, sync_status, sync_error, member_id, external_id, connection_id, after, limit
            )
        )

    def get_sync_history(
        self, member_id: str, connection_id: str, limit: int = 100
    ) -> list[SyncRun]:
        """A member's connection's sync runs, newest first (the last 100 are kept)."""
        return self._sender.send(ops.member_sync_history(member_id, connection_id, limit))

    # ------------------------------------------------------------ events and webhooks
    def list_events(
        self,
        type: str | Iterable[str] | None = None,
        member_id: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> EventPage:
        """The event log, oldest first; ``after`` is an event id (the page's ``next_after``)."""
        return self._sender.send(ops.list_events(type, member_id, after, limit))

    def redeliver_event(self, event_id: str) -> int:
        """Deliver one event again to every enabled endpoint that wants it; how many."""
        return self._sender.send(ops.redeliver_event(event_id))

    def create_webhook_endpoint(
        self, url: str, events: Iterable[str] | None = None, description: str = ""
    ) -> WebhookEndpoint:
        """Register an endpoint; the result's ``secret`` (``whsec_…``) is shown only now."""
        return self._sender.send(ops.create_webhook_endpoint(url, events, description))

    def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        return self._sender.send(ops.list_webhook_endpoints())

    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        return self._sender.send(ops.get_webhook_endpoint(endpoint_id))

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        description: str | None = None,
        disabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change what is given; ``disabled=False`` re-enables and resumes deliveries."""
        return self._sender.send(
            ops.update_webhook_endpoint(endpoint_id, url, events, description, disabled)
        )

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self._sender.send(ops.delete_webhook_endpoint(endpoint_id))

    def rotate_webhook_secret(self, endpoint_id: str) -> WebhookEndpoint:
        """A new secret (in the result); the old one keeps signing beside it for 24 hours."""
        return self._sender.send(ops.rotate_webhook_secret(endpoint_id))

    def list_webhook_deliveries(
        self,
        endpoint_id: str,
        state: str | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> WebhookDeliveryPage:
        """Deliveries to the endpoint, newest first, with their attempts."""
        return self._sender.send(ops.list_webhook_deliveries(endpoint_id, state, after, limit))

    def replay_webhook_endpoint(self, endpoint_id: str, since: datetime) -> int:
        """Deliver again every event since ``since`` (timezone-aware); how many were queued."""
        return self._sender.send(ops.replay_webhook_endpoint(endpoint_id, since))

    def export_records(
        self,
        directory: Path | str,
        *,
        member_id: str | None = None,
        types: Iterable[str] | None = None,
        since: datetime | None = None,
        timeout: float = DEFAULT_EXPORT_TIMEOUT,
        interval: float = DEFAULT_EXPORT_INTERVAL,
    ) -> Export:
        """A FHIR Bulk Data export of every member's records (or ``member_id``'s), waited for
        and saved as NDJSON files under ``directory``; ``since`` asks only for what tether
        stored after it (pair it with the ``sync.completed`` webhook)."""
        return exports.export_records(
            self._sender,
            directory,
            member_id=member_id,
            types=types,
            since=since,
            timeout=timeout,
            interval=interval,
        )
