"""``GET /.well-known/jwks.json``: tether's public signing keys (RFC 7517), unauthenticated.

Health systems that authenticate tether with ``private_key_jwt`` register this URL and fetch
it to verify tether's client assertions (:mod:`tether.signing`).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from tether import signing
from tether.http.deps import RuntimeDep

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
