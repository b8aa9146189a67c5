"""``GET /.well-known/jwks.json``: tether's public signing keys (RFC 7517), unauthenticated.

Health systems that authenticate tether with ``private_key_jwt`` register this URL and fetch
it to verify tether's client assertions (:mod:`tether.signing`). A source that needs a set of
its own (only keys of its algorithm) is given ``/.well-known/jwks/{source id}.json``.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from tether import signing
from tether.http.deps import RuntimeDep
from tether.http.openapi import problems

router = APIRouter(tags=["keys"])
JWKS_MAX_AGE = 300  # seconds; keys are published an activation delay before they sign


@router.get(
    "/.well-known/jwks.json",
    summary="tether's public keys for private_key_jwt client authentication (RFC 7517)",
    response_class=JSONResponse,
    responses={
        200: {
            "description": "A JWK Set: the public keys only",
            "content": {"application/jwk-set+json": {"schema": {"type": "object"}}},
        }
    },
)
def jwks(runtime: RuntimeDep) -> JSONResponse:
    return JSONResponse(
        signing.jwks(runtime),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@router.get(
    "/.well-known/jwks/{source_id}.json",
    summary="the public keys one private_key_jwt data source verifies (its algorithm only)",
    response_class=JSONResponse,
    responses={
        200: {
            "description": "A JWK Set: the public keys of the source's signing algorithm",
            "content": {"application/jwk-set+json": {"schema": {"type": "object"}}},
        },
        **problems(404),
    },
)
def source_jwks(source_id: str, runtime: RuntimeDep) -> JSONResponse:
    return JSONResponse(
        signing.source_jwks(runtime, source_id),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )
