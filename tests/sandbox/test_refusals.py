"""What the authorization server must refuse (RFC 6749, RFC 7636, SMART App Launch 2.x)."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import CALLBACK, Live, authorize_url, pkce, query_of
from tether.sandbox.testing import complete_consent


def exchange(
    live: Live,
    code: str,
    verifier: str | None,
    *,
    auth: tuple[str, str] | None = None,
    redirect_uri: str = CALLBACK,
) -> dict[str, str]:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    answer = live.http.post(
        f"{live.base()}/oauth/token", data=data, auth=auth or ("tether", "sandbox-secret")
    )
    body: dict[str, str] = answer.json()
    body["status"] = str(answer.status_code)
    return body


def code_for(live: Live, challenge: str) -> str:
    return query_of(complete_consent(live.http, authorize_url(live, challenge=challenge)))["code"]


def test_bad_client_credentials(live: Live) -> None:
    verifier, challenge = pkce()
    refused = exchange(live, code_for(live, challenge), verifier, auth=("tether", "wrong"))
    assert refused["error"] == "invalid_client"
    assert refused["status"] == "401"


def test_wrong_redirect_uri_is_not_redirected_to(live: Live) -> None:
    page = live.http.get(authorize_url(live, redirect_uri="http://evil.example/cb"))
    assert page.status_code == 400
    assert "location" not in page.headers


def test_token_redirect_uri_must_match(live: Live) -> None:
    verifier, challenge = pkce()
    refused = exchange(
        live, code_for(live, challenge), verifier, redirect_uri="http://127.0.0.1:9/other"
    )
    assert refused["error"] == "invalid_grant"


def test_wrong_and_missing_verifier(live: Live) -> None:
    _verifier, challenge = pkce()
    assert exchange(live, code_for(live, challenge), pkce()[0])["error"] == "invalid_grant"
    assert exchange(live, code_for(live, challenge), None)["error"] == "invalid_request"


@pytest.mark.parametrize("method", ["plain", ""])
def test_plain_or_absent_challenge_method_refused(live: Live, method: str) -> None:
    location = complete_consent(live.http, authorize_url(live, code_challenge_method=method))
    assert query_of(location)["error"] == "invalid_request"


def test_missing_challenge_refused(live: Live) -> None:
    url = authorize_url(live).replace("code_challenge=", "x=")
    assert query_of(complete_consent(live.http, url))["error"] == "invalid_request"


def test_replayed_code_refused(live: Live) -> None:
    verifier, challenge = pkce()
    code = code_for(live, challenge)
    assert "access_token" in exchange(live, code, verifier)
    assert exchange(live, code, verifier)["error"] == "invalid_grant"


def test_wrong_audience_refused(live: Live) -> None:
    location = complete_consent(live.http, authorize_url(live, aud=live.fhir("sandbox-lab")))
    assert query_of(location)["error"] == "invalid_request"


def test_consent_denied_returns_access_denied(live: Live) -> None:
    location = complete_consent(live.http, authorize_url(live, state="s1"), approve=False)
    assert location.startswith(CALLBACK)
    assert query_of(location) == {
        "error": "access_denied",
        "state": "s1",
        "error_description": query_of(location)["error_description"],
    }
