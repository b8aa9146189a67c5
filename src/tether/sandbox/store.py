"""Authorization codes and tokens of every sandbox source, in SQLite.

``path=None`` keeps them in an in-memory database; a path keeps them on disk so a demo
restart does not break live connections. Codes and tokens are stored as SHA-256
digests, never in clear (RFC 6749 §10.3/§10.5: they are bearer secrets).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    digest TEXT PRIMARY KEY, source TEXT NOT NULL, client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL, scope TEXT NOT NULL, patient TEXT NOT NULL,
    challenge TEXT, challenge_method TEXT, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    access_digest TEXT PRIMARY KEY, refresh_digest TEXT UNIQUE, source TEXT NOT NULL,
    client_id TEXT NOT NULL, scope TEXT NOT NULL, patient TEXT NOT NULL,
    issued_at REAL NOT NULL, access_expires_at REAL NOT NULL,
    refresh_expires_at REAL NOT NULL, access_revoked INTEGER NOT NULL DEFAULT 0,
    refresh_revoked INTEGER NOT NULL DEFAULT 0, grant_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS used_codes (digest TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_grant ON tokens (grant_id);
CREATE INDEX IF NOT EXISTS tokens_source ON tokens (source);
"""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class CodeRow:
    source: str
    client_id: str
    redirect_uri: str
    scope: str
    patient: str
    challenge: str | None
    challenge_method: str | None
    expires_at: float


@dataclass(frozen=True)
class TokenRow:
    access_digest: str
    refresh_digest: str | None
    source: str
    client_id: str
    scope: str
    patient: str
    issued_at: float
    access_expires_at: float
    refresh_expires_at: float
    access_revoked: bool
    refresh_revoked: bool
    grant_id: str  # shared by every token of one authorization (rotation keeps it)


class GrantStore:
    """Thread-safe storage for codes and tokens (one connection, one lock)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False
        )
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- authorization codes (RFC 6749 §4.1.2: short-lived, single use) --------------
    def save_code(self, code: str, row: CodeRow) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO codes VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    digest(code),
                    row.source,
                    row.client_id,
                    row.redirect_uri,
                    row.scope,
                    row.patient,
                    row.challenge,
                    row.challenge_method,
                    row.expires_at,
                ),
            )

    def find_code(self, code: str, *, source: str, client_id: str) -> CodeRow | None:
        with self._lock:
            found = self._db.execute(
                "SELECT source, client_id, redirect_uri, scope, patient, challenge, "
                "challenge_method, expires_at FROM codes "
                "WHERE digest=? AND source=? AND client_id=?",
                (digest(code), source, client_id),
            ).fetchone()
        if found is None:
            return None
        row = CodeRow(*found)
        return row if row.expires_at > time.time() else None

    def delete_code(self, code_digest: str) -> None:
        """The code was exchanged: it goes, and is remembered as used until it would have
        expired (a second exchange of it is a replay: RFC 6749 §4.1.2)."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO used_codes SELECT digest, expires_at FROM codes "
                "WHERE digest=?",
                (code_digest,),
            )
            self._db.execute("DELETE FROM codes WHERE digest=?", (code_digest,))
            self._db.execute("DELETE FROM used_codes WHERE expires_at < ?", (time.time(),))

    def code_was_used(self, code: str) -> bool:
        with self._lock:
            found = self._db.execute(
                "SELECT 1 FROM used_codes WHERE digest=? AND expires_at >= ?",
                (digest(code), time.time()),
            ).fetchone()
        return found is not None

    # -- tokens ------------------------------------------------------------------------
    def save_token(self, row: TokenRow) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO tokens VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row.access_digest,
                    row.refresh_digest,
                    row.source,
                    row.client_id,
                    row.scope,
                    row.patient,
                    row.issued_at,
                    row.access_expires_at,
                    row.refresh_expires_at,
                    int(row.access_revoked),
                    int(row.refresh_revoked),
                    row.grant_id,
                ),
            )

    def find_access(self, token: str, *, source: str) -> TokenRow | None:
        return self._find("access_digest", digest(token), source)

    def find_refresh(self, token: str, *, source: str) -> TokenRow | None:
        return self._find("refresh_digest", digest(token), source)

    def _find(self, column: str, value: str, source: str) -> TokenRow | None:
        with self._lock:
            found = self._db.execute(
                f"SELECT * FROM tokens WHERE {column}=? AND source=?",  # noqa: S608 - fixed names
                (value, source),
            ).fetchone()
        if found is None:
            return None
        values = list(found)
        values[9], values[10] = bool(values[9]), bool(values[10])
        return TokenRow(*values)

    def retire_refresh(self, access_digest: str) -> None:
        """Refresh-token rotation: the used refresh token stops working."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE tokens SET refresh_revoked=1 WHERE access_digest=?", (access_digest,)
            )

    def revoke_grant(self, grant_id: str) -> None:
        """RFC 7009 §2.1: revoke every access and refresh token of one authorization."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE tokens SET access_revoked=1, refresh_revoked=1 WHERE grant_id=?",
                (grant_id,),
            )

    def expire_all(self, source: str, *, now: float) -> int:
        """Make every access token of ``source`` expired; refresh tokens still work."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE tokens SET access_expires_at=? WHERE source=? AND access_expires_at>?",
                (now - 1, source, now - 1),
            )
            return cursor.rowcount

    def revoke_all(self, source: str) -> int:
        """Revoke every token of ``source`` (access and refresh) and drop its codes."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM codes WHERE source=?", (source,))
            cursor = self._db.execute(
                "UPDATE tokens SET access_revoked=1, refresh_revoked=1 WHERE source=?",
                (source,),
            )
            return cursor.rowcount
