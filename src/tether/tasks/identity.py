"""Job entry points of identity: housekeeping of the SDK's refresh tokens."""

from __future__ import annotations

from tether.identity.sdk_tokens import purge_expired_refresh_tokens
from tether.runtime import Runtime


def expired_refresh_tokens(runtime: Runtime) -> int:
    """Delete the SDK refresh tokens that have expired (the table would only grow)."""
    return purge_expired_refresh_tokens(runtime)
