"""Verifying tether's webhooks in your receiver, as the Standard Webhooks specification says
(https://www.standardwebhooks.com): standard library only. ::

    from tether.client import verify_webhook, WebhookVerificationError

    try:
        event = verify_webhook(secret, request.headers, request.get_data())
    except WebhookVerificationError:
        return "", 400
    handle(event["type"], event["data"])

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, HMAC-SHA256 under the
base64-decoded ``whsec_`` secret; ``webhook-signature`` holds one or more space-separated
``v1,<base64>`` signatures (two while a rotated-out secret still signs) and one matching is
enough. A timestamp further than ``tolerance`` seconds from now is refused, so a captured
request cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from tether.client._exceptions import TetherError

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds


class WebhookVerificationError(TetherError):
    """The delivery is not from tether (bad or missing signature), or is stale or malformed.
    Answer it with a 4xx; tether retries, and a real delivery verifies."""

    def __init__(self, detail: str) -> None:
        super().__init__({"title": "Webhook verification failed", "detail": detail})


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivery's payload (``{type, timestamp, data}``) once its signature and timestamp
    check out; raises :class:`WebhookVerificationError` otherwise."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        sent = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        raise WebhookVerificationError("the timestamp is too old or too new")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a whsec_ secret") from None
    expected = hmac.new(key, f"{msg_id}.{stamp}.".encode() + raw, hashlib.sha256).digest()
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            break
    else:
        raise WebhookVerificationError("no signature matches")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise WebhookVerificationError("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return payload
