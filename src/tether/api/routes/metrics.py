"""``GET /metrics``: Prometheus text exposition, behind a bearer secret.

Off unless ``TETHER_METRICS_TOKEN`` is set (then 404), because the fleet gauges tell anyone
who can read them how many members connect which sources. ``TETHER_METRICS_PORT`` serves the
same registry on a separate (private) listener instead; see ``docs/operations.md``.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from tether.errors import AuthenticationRequired, NotFound
from tether.http.deps import RuntimeDep
from tether.metrics import CONTENT_TYPE, exposition

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, runtime: RuntimeDep) -> Response:
    token = runtime.settings.metrics_token
    if token is None:
        raise NotFound("metrics are off: set TETHER_METRICS_TOKEN", code="METRICS_OFF")
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.encode(), expected):
        raise AuthenticationRequired("the metrics bearer secret is missing or wrong")
    return Response(exposition(request.app.state.metrics_registry), media_type=CONTENT_TYPE)
