"""Per-request GraphQL context: the runtime, the request headers, and who is calling.

Authenticated fields use the same authentication as REST: ``Authorization: Bearer <member
token>`` (or the API key where REST takes one), verified by :mod:`tether.identity`. The
identity fields of the SDK read their own headers (``Authorization`` raw, ``ClientKey``,
``refresh_token``) and never call :meth:`Context.member`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from strawberry.fastapi import BaseContext

from tether.identity.credentials import authenticate, bearer_credential
from tether.identity.principals import MemberPrincipal, Principal, member_only
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
            credential = bearer_credential(self.header("authorization"))
            self._principal = authenticate(self.runtime, credential)
        return self._principal

    async def caller(self) -> Principal:
        """The member or tenant behind ``Authorization: Bearer …`` (401 problem otherwise)."""
        return await run_in_threadpool(self._authenticate)

    async def member(self) -> MemberPrincipal:
        """The member behind ``Authorization: Bearer <member token>`` (403 for an API key)."""
        return member_only(await self.caller())

    async def call(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Run a (blocking) service function off the event loop, as REST's sync routes are."""
        return await run_in_threadpool(fn, *args, **kwargs)


def get_context(request: Request) -> Context:
    """FastAPI dependency that builds the context (never fails: fields authenticate lazily)."""
    runtime: Runtime = request.app.state.runtime
    return Context(runtime)
