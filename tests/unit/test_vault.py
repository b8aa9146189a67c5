"""The vault seals secrets to their row and survives key rotation."""

import pytest

from tether.errors import ConfigurationError
from tether.vault import Vault, VaultError, generate_key


def test_round_trip_and_no_plaintext_in_ciphertext() -> None:
    vault = Vault([generate_key()])
    sealed = vault.encrypt("access-token-123", binding="connection:1:access_token")
    assert "access-token-123" not in sealed
    assert vault.decrypt(sealed, binding="connection:1:access_token") == "access-token-123"


def test_ciphertext_copied_to_another_row_does_not_decrypt() -> None:
    vault = Vault([generate_key()])
    sealed = vault.encrypt("secret", binding="connection:1:access_token")
    with pytest.raises(VaultError):
        vault.decrypt(sealed, binding="connection:2:access_token")
    with pytest.raises(VaultError):
        vault.decrypt(sealed, binding="connection:1:refresh_token")


def test_tampered_ciphertext_is_refused() -> None:
    vault = Vault([generate_key()])
    sealed = vault.encrypt("secret", binding="b")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(VaultError):
        vault.decrypt(tampered, binding="b")


def test_rotation_keeps_old_values_readable_and_flags_them() -> None:
    old, new = generate_key(), generate_key()
    before = Vault([old]).encrypt("secret", binding="b")
    rotated = Vault([new, old])
    assert rotated.decrypt(before, binding="b") == "secret"
    assert rotated.needs_rotation(before)
    resealed = rotated.encrypt("secret", binding="b")
    assert not rotated.needs_rotation(resealed)
    with pytest.raises(VaultError):
        Vault([new]).decrypt(before, binding="b")


def test_bad_keys_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        Vault([])
    with pytest.raises(ConfigurationError):
        Vault(["c2hvcnQ"])
