"""Every secret tether keeps, sealed by the vault and bound to its row and column.

One place names the sealed columns and their bindings, so that encryption, decryption and
``tether keys rotate`` can never disagree about them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tether.runtime import Runtime
from tether.store.models import (
    Connection,
    DataSource,
    OAuthAttempt,
    SigningKey,
    WebhookEndpoint,
)
from tether.vault import Vault

ROTATION_BATCH = 500


def connection_binding(connection_id: int, column: str) -> str:
    return f"connection:{connection_id}:{column}"


def attempt_binding(attempt_id: int) -> str:
    return f"oauth_attempt:{attempt_id}:code_verifier"


def webhook_secret_binding(endpoint_id: str, column: str) -> str:
    return f"webhook_endpoint:{endpoint_id}:{column}"


def client_secret_binding(source_id: str) -> str:
    return f"data_source:{source_id}:client_secret"


def signing_key_binding(kid: str) -> str:
    return f"signing_key:{kid}:private_key"


@dataclass(frozen=True)
class SealedColumn:
    model: Any
    column: str
    binding: Callable[[Any], str]
    # For values stored inside a JSON column: the key path within it.
    json_path: tuple[str, ...] = ()


SEALED: tuple[SealedColumn, ...] = (
    SealedColumn(Connection, "access_token", lambda r: connection_binding(r.id, "access_token")),
    SealedColumn(Connection, "refresh_token", lambda r: connection_binding(r.id, "refresh_token")),
    SealedColumn(Connection, "credentials", lambda r: connection_binding(r.id, "credentials")),
    SealedColumn(OAuthAttempt, "code_verifier", lambda r: attempt_binding(r.id)),
    SealedColumn(WebhookEndpoint, "secret", lambda r: webhook_secret_binding(r.id, "secret")),
    SealedColumn(
        WebhookEndpoint,
        "previous_secret",
        lambda r: webhook_secret_binding(r.id, "previous_secret"),
    ),
    SealedColumn(
        DataSource,
        "settings",
        lambda r: client_secret_binding(r.id),
        json_path=("oauth", "client_secret"),
    ),
    SealedColumn(SigningKey, "private_key", lambda r: signing_key_binding(r.id)),
)


def rotate(session: Session, vault: Vault) -> int:
    """Re-seal every value not sealed with the newest key; returns how many were re-sealed."""
    count = 0
    for sealed in SEALED:
        model = sealed.model
        rows = session.scalars(select(model).order_by(model.id)).yield_per(ROTATION_BATCH)
        for row in rows:
            value = getattr(row, sealed.column)
            if sealed.json_path:
                holder = value
                for key in sealed.json_path[:-1]:
                    holder = holder.get(key) if isinstance(holder, dict) else None
                leaf = sealed.json_path[-1]
                current = holder.get(leaf) if isinstance(holder, dict) else None
                if isinstance(current, str) and vault.needs_rotation(current):
                    plain = vault.decrypt(current, binding=sealed.binding(row))
                    updated = _deep_copy(value)
                    target = updated
                    for key in sealed.json_path[:-1]:
                        target = target[key]
                    target[leaf] = vault.encrypt(plain, binding=sealed.binding(row))
                    setattr(row, sealed.column, updated)
                    count += 1
            elif isinstance(value, str) and vault.needs_rotation(value):
                plain = vault.decrypt(value, binding=sealed.binding(row))
                setattr(row, sealed.column, vault.encrypt(plain, binding=sealed.binding(row)))
                count += 1
    return count


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def reseal_all(runtime: Runtime) -> int:
    """``tether keys rotate``: :func:`rotate` in one unit of work."""
    with runtime.db.write() as session:
        return rotate(session, runtime.vault)
