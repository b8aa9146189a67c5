"""Identifiers and one-way secret handling shared by the services."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier such as ``mem_3kq9…`` (80 bits)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def new_secret(nbytes: int = 32) -> str:
    """An unguessable URL-safe secret (launch tokens, OAuth state, API keys)."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    """Lookup hash for a high-entropy secret (launch token, state)."""
    return hashlib.sha256(value.encode()).hexdigest()


def keyed_hash(key: str, value: str, *, purpose: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, domain-separated by ``purpose``."""
    return hmac.new(f"{purpose}:{key}".encode(), value.encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
