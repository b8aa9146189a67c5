"""Fault injection: how the knobs turn into slow, failing or broken responses.

Applied to every FHIR request, in this order: ``stall_seconds``, ``latency_ms``, then
``rate_429`` / ``rate_503`` / ``rate_500`` (one roll each, deterministic by default).
With ``token_endpoint_faults`` on, ``rate_429`` and ``rate_503`` also apply to the token
endpoint (answered as OAuth-style JSON errors). ``forbidden_types``, ``malformed_page``
and ``endless_next`` are applied by the FHIR search/read handlers.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate

from starlette.responses import Response

from tether.sandbox.counters import Counters
from tether.sandbox.fhir.outcomes import operation_outcome
from tether.sandbox.knobs import FaultDice, Knobs

FAULTS = (
    (429, "rate_429", "throttled", "Too many requests (sandbox knob rate_429)"),
    (503, "rate_503", "transient", "Service unavailable (sandbox knob rate_503)"),
    (500, "rate_500", "exception", "Internal error (sandbox knob rate_500)"),
)


async def delay(knobs: Knobs) -> None:
    if knobs.stall_seconds > 0:
        await asyncio.sleep(knobs.stall_seconds)
    if knobs.latency_ms > 0:
        await asyncio.sleep(knobs.latency_ms / 1000)


def status_fault(
    knobs: Knobs, dice: FaultDice, counters: Counters, *, token_endpoint: bool = False
) -> Response | None:
    """A 429/503/500 response if one of the rate knobs fires for this request."""
    for status, knob, code, text in FAULTS:
        if token_endpoint and status == 500:
            continue
        scope = f"token:{knob}" if token_endpoint else knob
        if not dice.roll(scope, getattr(knobs, knob), knobs.fault_seed):
            continue
        counters.bump("faults")
        headers = {"Retry-After": _retry_after(knobs)} if status in (429, 503) else {}
        if token_endpoint:
            body = b'{"error":"temporarily_unavailable"}'
            return Response(body, status, headers=headers, media_type="application/json")
        return operation_outcome(status, code, text, headers=headers)
    return None


def _retry_after(knobs: Knobs) -> str:
    """``Retry-After`` as delay-seconds, or as the HTTP-date that many seconds from now."""
    if knobs.retry_after_date:
        return formatdate(time.time() + knobs.retry_after, usegmt=True)
    return str(knobs.retry_after)
