"""The whole SMART standalone-launch flow against the live sandbox, over real HTTP."""

from __future__ import annotations

import html
import re

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.sandbox.conftest import (
    CALLBACK,
    CLINIC,
    Live,
    authorize_url,
    bearer,
    connect,
    pkce,
    query_of,
)
from tether.sandbox.testing import complete_consent


def test_discovery_advertises_smart_capabilities(live: Live) -> None:
    config = live.http.get(f"{live.fhir()}/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == f"{live.base()}/oauth/token"
    assert config["code_challenge_methods_supported"] == ["S256"]
    for capability in (
        "launch-standalone",
        "client-confidential-symmetric",
        "client-public",
        "context-standalone-patient",
        "permission-offline",
    ):
        assert capability in config["capabilities"]
    metadata = live.http.get(f"{live.fhir()}/metadata")
    assert metadata.headers["content-type"].startswith("application/fhir+json")
    security = metadata.json()["rest"][0]["security"]["extension"][0]
    assert security["url"].endswith("oauth-uris")


def test_whole_flow_with_authlib_client_paging_refresh_and_revoke(live: Live) -> None:
    """Discover, authorize with PKCE, consent, token, page, refresh (rotated), revoke."""
    discovery = live.http.get(f"{live.fhir()}/.well-known/smart-configuration").json()
    client = OAuth2Client(
        client_id="tether",
        client_secret="sandbox-secret",
        redirect_uri=CALLBACK,
        scope="launch/patient offline_access patient/*.rs",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = "v" * 20 + "erifier-for-the-whole-flow-test-0123456789"
    url, state = client.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, aud=live.fhir()
    )
    assert create_s256_code_challenge(verifier) in url
    location = complete_consent(live.http, url, patient="clinic-1")
    assert query_of(location)["state"] == state
    before = live.sandbox.counters(CLINIC).as_dict()
    token = client.fetch_token(
        discovery["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    assert token["patient"] == "clinic-1"
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] > 0
    assert "offline_access" in token["scope"]

    url, pages, seen = f"{live.fhir()}/Observation?patient=clinic-1&_count=100", 0, set()
    while url:
        page = live.http.get(url, headers=bearer(token)).json()
        assert page["resourceType"] == "Bundle"
        assert page["type"] == "searchset"
        seen.update(e["resource"]["id"] for e in page["entry"])
        url = next((x["url"] for x in page["link"] if x["relation"] == "next"), None)
        assert url is None or url.startswith(live.fhir())
        pages += 1
    assert pages > 2
    assert len(seen) == page["total"]

    old_refresh = token["refresh_token"]
    renewed = client.refresh_token(discovery["token_endpoint"], refresh_token=old_refresh)
    assert renewed["refresh_token"] != old_refresh
    assert renewed["patient"] == "clinic-1"
    counters = live.sandbox.counters(CLINIC).as_dict()
    assert counters["refreshes"] - before["refreshes"] == 1
    reused = live.http.post(
        f"{live.base()}/oauth/token",
        auth=("tether", "sandbox-secret"),
        data={"grant_type": "refresh_token", "refresh_token": old_refresh},
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"

    ok = live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(renewed))
    assert ok.status_code == 200
    assert ok.json()["id"] == "clinic-1"
    revoked = live.http.post(
        f"{live.base()}/oauth/revoke",
        auth=("tether", "sandbox-secret"),
        data={"token": renewed["refresh_token"]},
    )
    assert revoked.status_code == 200
    denied = live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(renewed))
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Bearer")
    again = live.http.post(
        f"{live.base()}/oauth/token",
        auth=("tether", "sandbox-secret"),
        data={"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"]},
    )
    assert again.json()["error"] == "invalid_grant"


def test_public_client_with_pkce_and_introspection(live: Live) -> None:
    from tests.sandbox.conftest import authorize_url, pkce

    verifier, challenge = pkce()
    location = complete_consent(
        live.http, authorize_url(live, client_id="tether-public", challenge=challenge)
    )
    token = live.http.post(
        f"{live.base()}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": query_of(location)["code"],
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
            "client_id": "tether-public",
        },
    ).json()
    assert token["patient"] == "clinic-1"
    info = live.http.post(
        f"{live.base()}/oauth/introspect",
        data={"token": token["access_token"], "client_id": "tether-public"},
    )
    assert info.json()["active"] is True
    assert info.json()["patient"] == "clinic-1"
    live.http.post(
        f"{live.base()}/oauth/revoke",
        data={"token": token["access_token"], "client_id": "tether-public"},
    )
    info = live.http.post(
        f"{live.base()}/oauth/introspect",
        data={"token": token["access_token"], "client_id": "tether-public"},
    )
    assert info.json() == {"active": False}


def test_refresh_token_only_with_offline_access(live: Live) -> None:
    token = connect(live, scope="launch/patient patient/*.rs")
    assert "refresh_token" not in token


def test_other_patient_is_forbidden_and_unknown_ids_not_found(live: Live) -> None:
    token = connect(live, patient="clinic-2")
    other = live.http.get(f"{live.fhir()}/Condition?patient=clinic-1", headers=bearer(token))
    assert other.status_code == 403
    missing = live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(token))
    assert missing.status_code == 404
    no_token = live.http.get(f"{live.fhir()}/Condition")
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"].startswith("Bearer")


def test_a_replayed_code_is_refused_and_revokes_what_it_issued(live: Live) -> None:
    """RFC 6749 §4.1.2: a code used twice is denied, and the tokens issued from it (and
    refreshed from them) are revoked."""
    verifier, challenge = pkce()
    location = complete_consent(
        live.http, authorize_url(live, challenge=challenge), patient="clinic-1"
    )
    exchange = {
        "grant_type": "authorization_code",
        "code": query_of(location)["code"],
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    auth = ("tether", "sandbox-secret")
    first = live.http.post(f"{live.base()}/oauth/token", data=exchange, auth=auth)
    assert first.status_code == 200
    token = first.json()
    patient = f"{live.fhir()}/Patient/clinic-1"
    assert live.http.get(patient, headers=bearer(token)).status_code == 200
    replay = live.http.post(f"{live.base()}/oauth/token", data=exchange, auth=auth)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert live.http.get(patient, headers=bearer(token)).status_code == 401
    refresh = live.http.post(
        f"{live.base()}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=auth,
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_the_consent_form_needs_its_own_cookie(live: Live) -> None:
    """A POST of the consent form that did not come from the sandbox's own page (no cookie,
    or another form's secret) approves nothing."""
    _, challenge = pkce()
    url = authorize_url(live, challenge=challenge)
    page = live.http.get(url)
    assert page.status_code == 200 and 'name="csrf"' in page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    form = {**{k: html.unescape(v) for k, v in fields.items()}, "patient": "clinic-1"}
    action = f"{live.base()}/oauth/authorize"
    with httpx.Client(timeout=30) as stranger:  # another site's page: no sandbox cookie
        forged = stranger.post(action, data={**form, "decision": "approve"})
    assert forged.status_code == 400 and "location" not in forged.headers
    wrong = live.http.post(action, data={**form, "csrf": "not-the-secret", "decision": "approve"})
    assert wrong.status_code == 400 and "location" not in wrong.headers
    good = live.http.post(action, data={**form, "decision": "approve"}, follow_redirects=False)
    assert good.status_code == 302 and "code=" in good.headers["location"]
