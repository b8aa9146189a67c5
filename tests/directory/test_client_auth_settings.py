"""The directory's client authentication settings, private_key_jwt among them."""

from __future__ import annotations

import pytest

from tether.directory.schema import parse_entries
from tether.errors import InvalidRequest


def _entry(**oauth: object) -> dict[str, object]:
    return {
        "id": "hospital",
        "name": "Hospital",
        "type": "CLINICAL",
        "fhir_base_url": "https://fhir.example/r4",
        "oauth": {"client_id": "tether", **oauth},
    }


def test_private_key_jwt_defaults_to_rs384_and_takes_es384() -> None:
    [entry] = parse_entries([_entry(token_endpoint_auth_method="private_key_jwt")])
    assert entry.oauth is not None and entry.oauth.signing_alg == "RS384"
    [entry] = parse_entries(
        [_entry(token_endpoint_auth_method="private_key_jwt", signing_alg="ES384")]
    )
    assert entry.oauth is not None and entry.oauth.signing_alg == "ES384"


@pytest.mark.parametrize(
    ("oauth", "message"),
    [
        (
            {"token_endpoint_auth_method": "private_key_jwt", "client_secret": "x"},
            "drop client_secret",
        ),
        ({"client_secret": "x", "signing_alg": "RS384"}, "only for token_endpoint_auth_method"),
        ({"token_endpoint_auth_method": "private_key_jwt", "signing_alg": "RS256"}, "signing_alg"),
    ],
)
def test_inconsistent_settings_name_the_entry(oauth: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        list(parse_entries([_entry(**oauth)]))
    assert "hospital" in str(refused.value) and message in str(refused.value)
