"""FastAPI dependencies: the runtime, and the caller's identity from ``Authorization: Bearer``.

Verifying the credential is :mod:`tether.identity`'s; these only read the header and say which
kind of principal a route needs. The ones that do no I/O are ``async``: FastAPI runs a plain
``def`` dependency in its thread pool, a hand-off to a thread and back for each, which a
request waits for twice when the machine's cores are busy.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tether.identity.credentials import authenticate, bearer_credential
from tether.identity.principals import (
    MemberPrincipal,
    Principal,
    TenantPrincipal,
    member_only,
    tenant_only,
)
from tether.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_principal(request: Request, runtime: RuntimeDep) -> Principal:
    """The tenant or member behind the request's bearer credential (401 otherwise): a lookup
    in the database, so in the thread pool."""
    return authenticate(runtime, bearer_credential(request.headers.get("authorization")))


async def get_member(principal: Annotated[Principal, Depends(get_principal)]) -> MemberPrincipal:
    return member_only(principal)


async def get_tenant(principal: Annotated[Principal, Depends(get_principal)]) -> TenantPrincipal:
    return tenant_only(principal)


AnyCaller = Annotated[Principal, Depends(get_principal)]
MemberCaller = Annotated[MemberPrincipal, Depends(get_member)]
TenantCaller = Annotated[TenantPrincipal, Depends(get_tenant)]
