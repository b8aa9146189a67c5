"""Admin endpoints of a source, guarded by ``Authorization: Bearer <admin_secret>``.

- ``GET /{source}/admin/knobs`` — current knobs; ``PATCH``/``PUT`` a JSON object to set
  some (``PUT`` resets the others to their defaults first).
- ``POST /{source}/admin/expire-tokens`` — every access token is expired now.
- ``POST /{source}/admin/revoke-all`` — every token is revoked (refresh → invalid_grant).
- ``POST /{source}/admin/reset`` — default knobs, zeroed counters.
- ``GET /{source}/admin/counters`` — requests served, by kind.
- ``GET /{source}/admin/patients`` — the synthetic patients.
- ``POST /{source}/admin/touch`` ``{"patient": id, "n": 10}`` — bump lastUpdated.
- ``POST /{source}/admin/resources`` ``{"patient": id, "resources": [...]}`` — add.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from json import JSONDecodeError
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tether.sandbox.controller import Sandbox
from tether.sandbox.knobs import KnobError

Handler = Callable[[Request], Awaitable[Response]]


def admin_routes(sandbox: Sandbox) -> list[Route]:
    """Routes relative to the sandbox mount."""

    def guarded(handler: Callable[[Request, str], Awaitable[Any]]) -> Handler:
        async def run(request: Request) -> Response:
            scheme, _, secret = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                secret.strip().encode(), sandbox.config.admin_secret.encode()
            ):
                return JSONResponse(
                    {"error": "admin secret required"},
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="sandbox-admin"'},
                )
            source = request.path_params["source"]
            if sandbox.config.source(source) is None:
                return JSONResponse({"error": f"unknown source {source!r}"}, 404)
            try:
                result = await handler(request, source)
            except (KnobError, ValueError, KeyError, JSONDecodeError) as exc:
                return JSONResponse({"error": str(exc)}, 400)
            return result if isinstance(result, Response) else JSONResponse(result)

        return run

    async def knobs(request: Request, source: str) -> Any:
        if request.method == "GET":
            return sandbox.knobs(source).as_dict()
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("send a JSON object of knob names to values")
        if request.method == "PUT":
            defaults = sandbox.knobs(source).as_dict()
            sandbox.reset(source)
            try:
                sandbox.set_knobs(source, changes)
            except KnobError:
                sandbox.set_knobs(source, defaults)
                raise
        else:
            sandbox.set_knobs(source, changes)
        return sandbox.knobs(source).as_dict()

    async def expire(request: Request, source: str) -> Any:
        return {"expired": sandbox.expire_tokens(source)}

    async def revoke_all(request: Request, source: str) -> Any:
        return {"revoked": sandbox.revoke_all(source)}

    async def reset(request: Request, source: str) -> Any:
        sandbox.reset(source)
        return sandbox.knobs(source).as_dict()

    async def counters(request: Request, source: str) -> Any:
        return sandbox.counters(source).as_dict()

    async def patients(request: Request, source: str) -> Any:
        return [asdict(p) for p in sandbox.patients(source)]

    async def touch(request: Request, source: str) -> Any:
        body = await request.json()
        return {"touched": sandbox.touch(source, str(body["patient"]), int(body.get("n", 1)))}

    async def add(request: Request, source: str) -> Any:
        body = await request.json()
        return {"added": sandbox.add(source, str(body["patient"]), list(body["resources"]))}

    return [
        Route("/{source}/admin/knobs", guarded(knobs), methods=["GET", "PATCH", "PUT"]),
        Route("/{source}/admin/expire-tokens", guarded(expire), methods=["POST"]),
        Route("/{source}/admin/revoke-all", guarded(revoke_all), methods=["POST"]),
        Route("/{source}/admin/reset", guarded(reset), methods=["POST"]),
        Route("/{source}/admin/counters", guarded(counters), methods=["GET"]),
        Route("/{source}/admin/patients", guarded(patients), methods=["GET"]),
        Route("/{source}/admin/touch", guarded(touch), methods=["POST"]),
        Route("/{source}/admin/resources", guarded(add), methods=["POST"]),
    ]
