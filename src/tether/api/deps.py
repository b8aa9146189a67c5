"""FastAPI dependencies: the runtime and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tether.accounts.service import Principal, authenticate
from tether.errors import AuthenticationRequired, Forbidden
from tether.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("send a member token or API key as 'Authorization: Bearer …'")
    return token.strip()


def get_principal(request: Request, runtime: RuntimeDep) -> Principal:
    token = bearer_token(request)
    with runtime.db.read() as session:
        return authenticate(session, token=token, secret_key=runtime.secret_key)


def get_member(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_member:
        raise Forbidden("this operation needs a member token, not an API key")
    return principal


def get_tenant(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.is_member:
        raise Forbidden("this operation needs the tenant's API key, not a member token")
    return principal


AnyPrincipal = Annotated[Principal, Depends(get_principal)]
MemberPrincipal = Annotated[Principal, Depends(get_member)]
TenantPrincipal = Annotated[Principal, Depends(get_tenant)]
