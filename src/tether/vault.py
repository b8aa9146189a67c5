"""Token vault: secrets encrypted at rest with AES-256-GCM, bound to their row, with rotation.

Every ciphertext is ``v1.<key id>.<nonce+ciphertext, base64url>``. The associated data is the
*binding* (for example ``connection:42:access_token``), so a ciphertext copied into another row
or column does not decrypt. Keys are a ring, newest first: encryption always uses the newest,
decryption finds the key by its id, and :meth:`Vault.needs_rotation` tells which values to
re-encrypt (``tether keys rotate``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tether.errors import ConfigurationError, VaultError

PREFIX = "v1"
NONCE_BYTES = 12

__all__ = ["Vault", "VaultError", "generate_key"]


def generate_key() -> str:
    """A fresh 256-bit key, base64url without padding."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise ConfigurationError("a vault key is not valid base64url") from exc
    if len(raw) != 32:
        raise ConfigurationError("a vault key must be 32 bytes (base64url)")
    return raw


def _key_id(raw: bytes) -> str:
    return hashlib.sha256(b"tether-vault-key-id" + raw).hexdigest()[:8]


class Vault:
    """Encrypts and decrypts short secrets (tokens, credentials) bound to a row."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigurationError("the vault needs at least one key")
        self._keys: list[tuple[str, AESGCM]] = []
        for text in keys:
            raw = _decode_key(text)
            self._keys.append((_key_id(raw), AESGCM(raw)))
        self._by_id = dict(self._keys)

    @property
    def current_key_id(self) -> str:
        return self._keys[0][0]

    def encrypt(self, plaintext: str, *, binding: str) -> str:
        key_id, aead = self._keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = aead.encrypt(nonce, plaintext.encode(), binding.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{PREFIX}.{key_id}.{body}"

    def decrypt(self, ciphertext: str, *, binding: str) -> str:
        try:
            prefix, key_id, body = ciphertext.split(".", 2)
        except ValueError as exc:
            raise VaultError("not a vault ciphertext") from exc
        aead = self._by_id.get(key_id)
        if prefix != PREFIX or aead is None:
            raise VaultError("ciphertext uses an unknown key")
        blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], binding.encode()).decode()
        except InvalidTag as exc:
            raise VaultError("ciphertext does not decrypt for this binding") from exc

    def encrypt_optional(self, plaintext: str | None, *, binding: str) -> str | None:
        return None if plaintext is None else self.encrypt(plaintext, binding=binding)

    def decrypt_optional(self, ciphertext: str | None, *, binding: str) -> str | None:
        return None if ciphertext is None else self.decrypt(ciphertext, binding=binding)

    def needs_rotation(self, ciphertext: str) -> bool:
        """True when the value was sealed with a key other than the newest."""
        return not ciphertext.startswith(f"{PREFIX}.{self.current_key_id}.")
