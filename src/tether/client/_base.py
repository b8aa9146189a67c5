"""What every client shares: construction, the sender, closing (sync and async)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx

from tether.client._transport import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    AsyncSender,
    RetryPolicy,
    SyncSender,
)


class SyncClient:
    """A client over one credential (member token or API key); use ``with`` or ``close()``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._sender = SyncSender(
            base_url,
            token,
            transport=transport,
            timeout=timeout,
            policy=RetryPolicy(retries=retries, backoff=backoff),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sender.close()


class AsyncClient:
    """The asyncio twin of :class:`SyncClient`; use ``async with`` or ``await aclose()``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._sender = AsyncSender(
            base_url,
            token,
            transport=transport,
            timeout=timeout,
            policy=RetryPolicy(retries=retries, backoff=backoff),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._sender.aclose()
