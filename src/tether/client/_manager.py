"""``ConnectionManager`` and ``AsyncConnectionManager``: the member's side of the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from tether.client import _exports as exports
from tether.client import _operations as ops
from tether.client._base import AsyncClient, SyncClient
from tether.client._exceptions import NotFoundError, TimeoutError
from tether.client._exports import DEFAULT_EXPORT_INTERVAL, DEFAULT_EXPORT_TIMEOUT, Export
from tether.client._models import (
    DataSource,
    DataSourcePage,
    MemberConnection,
    OauthUrl,
    SourceType,
    Status,
    StatusUpdate,
    SyncRun,
    SyncStatus,
)

DEFAULT_WAIT_TIMEOUT = 60.0  # seconds
DEFAULT_WAIT_INTERVAL = 1.0  # seconds between polls
DEFAULT_SEARCH_LIMIT = 20
DEFAULT_PAGE_SIZE = 50

Predicate = Callable[[MemberConnection], bool]
StatusFilter = Status | str | Iterable[Status | str] | None
SyncStatusFilter = SyncStatus | str | Iterable[SyncStatus | str] | None
TypeFilter = SourceType | str | Iterable[SourceType | str] | None


class _Waiter:
    """The bookkeeping of ``wait_until``, shared by the sync and async clients."""

    def __init__(self, connection_id: str, timeout: float, interval: float) -> None:
        if timeout < 0 or interval <= 0:
            raise ValueError("timeout must be >= 0 and interval > 0")
        self.connection_id = connection_id
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.interval = interval
        self.last: MemberConnection | None = None

    def next_sleep(self) -> float:
        """Seconds until the next poll; raises TimeoutError when none is left."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            state = (
                f"status {self.last.status}, syncStatus {self.last.sync_status}"
                if self.last
                else "no such connection"
            )
            raise TimeoutError(
                f"{self.connection_id}: condition not met within {self.timeout:g}s ({state})",
                last=self.last,
            )
        return min(self.interval, left)


class ConnectionManager(SyncClient):
    """The member's connections over HTTP, with a member token.

    ``ConnectionManager(base_url, token)``; use it as a context manager, or ``close()`` it.
    ``transport`` replaces the network (an ``httpx.MockTransport`` in tests), ``timeout`` is
    httpx's (seconds, or an ``httpx.Timeout``), ``retries`` is how many times an idempotent
    call is retried after a network error, a 429 or a 502/503/504 (0 turns retries off).
    """

    def get_oauth_url(self, connection_id: str, return_url: str | None = None) -> OauthUrl:
        """getOauthUrl: a single-use link that starts (or re-establishes) the connection.

        ``return_url`` must be on the tenant's allow-list. Never retried: each call mints a
        new link."""
        return self._sender.send(ops.get_oauth_url(connection_id, return_url))

    def get_member_connections(
        self,
        status: StatusFilter = None,
        sync_status: SyncStatusFilter = None,
        type: TypeFilter = None,
    ) -> list[MemberConnection]:
        """getMemberConnections; each filter is one value or several (any of them matches)."""
        return self._sender.send(ops.get_member_connections(status, sync_status, type))

    def get_connection(self, connection_id: str) -> MemberConnection:
        """One connection of the member (NotFoundError if there is none for that source)."""
        return self._sender.send(ops.get_connection(connection_id))

    def get_data_source(self, connection_id: str) -> DataSource:
        """getDataSource: one entry of the directory."""
        return self._sender.send(ops.get_data_source(connection_id))

    def search_data_sources(
        self,
        query: str | None = None,
        type: SourceType | str | None = None,
        near: str | None = None,
        radius: float | None = None,
        limit: int = DEFAULT_SEARCH_LIMIT,
        offset: int = 0,
    ) -> DataSourcePage:
        """searchDataSources: by name words, type, and place (``near`` a ZIP or 'lat,lon',
        ``radius`` in miles)."""
        return self._sender.send(ops.search_data_sources(query, type, near, radius, limit, offset))

    def create_connection(
        self, connection_id: str, username: str, password: str
    ) -> MemberConnection:
        """createConnection: connect a BASIC source with the member's portal credentials.

        The source checks them first; wrong ones raise ``ValidationError`` and store nothing."""
        return self._sender.send(ops.create_connection(connection_id, username, password))

    def disconnect_connection(self, connection_id: str) -> StatusUpdate:
        """disconnectConnection: stop retrieval and revoke the tokens; the data stays."""
        return self._sender.send(ops.disconnect_connection(connection_id))

    def delete_connection(self, connection_id: str) -> StatusUpdate:
        """deleteConnection: revoke the tokens now; the data is deleted asynchronously
        (``sync_status`` goes DELETING, then DATA_DELETED)."""
        return self._sender.send(ops.delete_connection(connection_id))

    def sync_now(self, connection_id: str) -> MemberConnection:
        """Ask for a sync now (asynchronous: poll ``sync_status``, e.g. with ``wait_until``)."""
        return self._sender.send(ops.sync_now(connection_id))

    def get_sync_history(self, connection_id: str, limit: int = 100) -> list[SyncRun]:
        """The connection's sync runs, newest first: why each ran, how it ended, what changed."""
        return self._sender.send(ops.sync_history(connection_id, limit))

    def wait_until(
        self,
        connection_id: str,
        predicate: Predicate,
        *,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        interval: float = DEFAULT_WAIT_INTERVAL,
        missing_ok: bool = False,
    ) -> MemberConnection:
        """Poll the connection until ``predicate`` holds for it, and return it.

        ``predicate`` sees every state polled (a place to update a progress display). With
        ``missing_ok`` a connection that does not exist yet counts as "not yet" instead of
        raising NotFoundError. Raises TimeoutError after ``timeout`` seconds."""
        waiter = _Waiter(connection_id, timeout, interval)
        while True:
            try:
                waiter.last = current = self.get_connection(connection_id)
            except NotFoundError:
                if not missing_ok:
                    raise
            else:
                if predicate(current):
                    return current
            time.sleep(waiter.next_sleep())

    def get_health_records(
        self,
        resource_type: str,
        connection_id: str | None = None,
        count: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """The member's stored FHIR resources of one type (optionally of one connection), as
        dicts, fetched ``count`` at a time following the Bundles' ``next`` links.

        The arguments are checked at once (ValidationError); pages are fetched as the
        iterator is consumed."""
        ops.health_records_page(resource_type, connection_id, count, None)  # check now
        return self._records(resource_type, connection_id, count)

    def _records(
        self, resource_type: str, connection_id: str | None, count: int
    ) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            bundle = self._sender.send(
                ops.health_records_page(resource_type, connection_id, count, cursor)
            )
            yield from ops.bundle_resources(bundle)
            cursor = ops.next_cursor(bundle)
            if cursor is None:
                return

    def export_records(
        self,
        directory: Path | str,
        *,
        types: Iterable[str] | None = None,
        since: datetime | None = None,
        timeout: float = DEFAULT_EXPORT_TIMEOUT,
        interval: float = DEFAULT_EXPORT_INTERVAL,
    ) -> Export:
        """A copy of the member's records: a FHIR Bulk Data export (``types``, or every type;
        only what tether stored after ``since``), waited for and saved as NDJSON files (one
        or more per type) under ``directory``."""
        return exports.export_records(
            self._sender, directory, types=types, since=since, timeout=timeout, interval=interval
        )


class AsyncConnectionManager(AsyncClient):
    """``ConnectionManager`` for asyncio: the same methods, awaited.

    ``get_health_records`` is an async iterator (``async for``); ``transport`` is an
    ``httpx.AsyncBaseTransport``. Use ``async with``, or ``await aclose()``.
    """

    async def get_oauth_url(self, connection_id: str, return_url: str | None = None) -> OauthUrl:
        """See ``ConnectionManager.get_oauth_url``."""
        return await self._sender.send(ops.get_oauth_url(connection_id, return_url))

    async def get_member_connections(
        self,
        status: StatusFilter = None,
        sync_status: SyncStatusFilter = None,
        type: TypeFilter = None,
    ) -> list[MemberConnection]:
        """See ``ConnectionManager.get_member_connections``."""
        return await self._sender.send(ops.get_member_connections(status, sync_status, type))

    async def get_connection(self, connection_id: str) -> MemberConnection:
        """See ``ConnectionManager.get_connection``."""
        return await self._sender.send(ops.get_connection(connection_id))

    async def get_data_source(self, connection_id: str) -> DataSource:
        """See ``ConnectionManager.get_data_source``."""
        return await self._sender.send(ops.get_data_source(connection_id))

    async def search_data_sources(
        self,
        query: str | None = None,
        type: SourceType | str | None = None,
        near: str | None = None,
        radius: float | None = None,
        limit: int = DEFAULT_SEARCH_LIMIT,
        offset: int = 0,
    ) -> DataSourcePage:
        """See ``ConnectionManager.search_data_sources``."""
        return await self._sender.send(
            ops.search_data_sources(query, type, near, radius, limit, offset)
        )

    async def create_connection(
        self, connection_id: str, username: str, password: str
    ) -> MemberConnection:
        """See ``ConnectionManager.create_connection``."""
        return await self._sender.send(ops.create_connection(connection_id, username, password))

    async def disconnect_connection(self, connection_id: str) -> StatusUpdate:
        """See ``ConnectionManager.disconnect_connection``."""
        return await self._sender.send(ops.disconnect_connection(connection_id))

    async def delete_connection(self, connection_id: str) -> StatusUpdate:
        """See ``ConnectionManager.delete_connection``."""
        return await self._sender.send(ops.delete_connection(connection_id))

    async def sync_now(self, connection_id: str) -> MemberConnection:
        """See ``ConnectionManager.sync_now``."""
        return await self._sender.send(ops.sync_now(connection_id))

    async def get_sync_history(self, connection_id: str, limit: int = 100) -> list[SyncRun]:
        """See ``ConnectionManager.get_sync_history``."""
        return await self._sender.send(ops.sync_history(connection_id, limit))

    async def wait_until(
        self,
        connection_id: str,
        predicate: Predicate,
        *,
        timeout: float = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109 - a polling deadline, as in the sync API
        interval: float = DEFAULT_WAIT_INTERVAL,
        missing_ok: bool = False,
    ) -> MemberConnection:
        """See ``ConnectionManager.wait_until``."""
        waiter = _Waiter(connection_id, timeout, interval)
        while True:
            try:
                waiter.last = current = await self.get_connection(connection_id)
            except NotFoundError:
                if not missing_ok:
                    raise
            else:
                if predicate(current):
                    return current
            await asyncio.sleep(waiter.next_sleep())

    def get_health_records(
        self,
        resource_type: str,
        connection_id: str | None = None,
        count: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """See ``ConnectionManager.get_health_records``; use ``async for``."""
        ops.health_records_page(resource_type, connection_id, count, None)  # check now
        return self._records(resource_type, connection_id, count)

    async def _records(
        self, resource_type: str, connection_id: str | None, count: int
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            bundle = await self._sender.send(
                ops.health_records_page(resource_type, connection_id, count, cursor)
            )
            for resource in ops.bundle_resources(bundle):
                yield resource
            cursor = ops.next_cursor(bundle)
            if cursor is None:
                return
