"""``TenantClient``: the health app's server side, with a tenant API key."""

from __future__ import annotations

import httpx

from tether.client import _operations as ops
from tether.client._base import SyncClient
from tether.client._models import (
    AuditEventPage,
    DataSource,
    DataSourcePage,
    Member,
    MemberPage,
    MemberToken,
    SourceType,
)
from tether.client._transport import DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT

DEFAULT_MEMBER_PAGE = 50
DEFAULT_AUDIT_PAGE = 100


class TenantClient(SyncClient):
    """Members, member tokens and the audit trail, with the tenant's API key (``tk_…``).

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
