"""Per-request GraphQL context: the runtime, the request headers, and who is calling.

Authenticated fields use the same member authentication as REST (``tether.api.deps``):
``Authorization: Bearer <member token>``, verified by ``tether.accounts.service.authenticate``.
The identity fields of the SDK read their own headers (``Authorization`` raw, ``ClientKey``,
``refresh_token``) and never call :meth:`Context.member`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from strawberry.fastapi import BaseContext

from tether.accounts.service import Principal
from tether.api.deps import get_principal
from tether.errors import Forbidden
from tether.runtime import Runtime

T = TypeVar("T")


class Context(BaseContext):
    """What every resolver sees as ``info.context``."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self._principal: Principal | None = None

    def header(self, name: str) -> str | None:
        """A request header (case-insensitive), or None."""
        assert self.request is not None
        return self.request.headers.get(name)

    def _authenticate(self) -> Principal:
        if self._principal is None:
            assert isinstance(self.request, Request)
            self._principal = get_principal(self.request, self.runtime)
        return self._principal

    async def caller(self) -> Principal:
        """The member or tenant behind ``Authorization: Bearer …`` (401 problem otherwise)."""
        return await run_in_threadpool(self._authenticate)

    async def member(self) -> Principal:
        """The member behind ``Authorization: Bearer <member token>``."""
        principal = await self.caller()
        if not principal.is_member:
            raise Forbidden("this operation needs a member token, not an API key")
        return principal

    async def call(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Run a (blocking) service function off the event loop, as REST's sync routes are."""
        return await run_in_threadpool(fn, *args, **kwargs)


def get_context(request: Request) -> Context:
    """FastAPI dependency that builds the context (never fails: fields authenticate lazily)."""
    runtime: Runtime = request.app.state.runtime
    return Context(runtime)
