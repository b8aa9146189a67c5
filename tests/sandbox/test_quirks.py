"""The sandbox source that bends the standard the way large EHRs do (``sandbox-regional``)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.conftest import Live, authorize_url, connect, query_of
from tether.sandbox.testing import complete_consent

REGIONAL = "sandbox-regional"
JSON_FHIR = {"Accept": "application/json+fhir"}


def _token(live: Live, *, withhold: tuple[str, ...] = ()) -> dict[str, Any]:
    return connect(live, source=REGIONAL, patient="regional-1", withhold=withhold, aud="")


def _get(live: Live, token: dict[str, Any], path: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token['access_token']}", **JSON_FHIR}
    headers.update(kwargs.pop("headers", {}))  # type: ignore[arg-type]
    return live.http.get(f"{live.fhir(REGIONAL)}/{path}", headers=headers, **kwargs)  # type: ignore[arg-type]


def test_aud_is_refused_and_its_absence_accepted(live: Live) -> None:
    location = complete_consent(live.http, authorize_url(live, source=REGIONAL))
    assert query_of(location)["error"] == "invalid_request"
    assert "aud" in query_of(location)["error_description"]
    assert "access_token" in _token(live)


def test_only_its_media_type_is_answered(live: Live) -> None:
    token = _token(live)
    refused = _get(live, token, "Patient", headers={"Accept": "application/fhir+json"})
    assert refused.status_code == 406
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert _get(live, token, "Patient").status_code == 200


def test_observations_need_a_category_and_pages_keep_it(live: Live) -> None:
    token = _token(live)
    refused = _get(live, token, "Observation")
    assert refused.status_code == 400
    assert "category" in refused.json()["issue"][0]["diagnostics"]
    page = _get(live, token, "Observation", params={"category": "vital-signs", "_count": 50}).json()
    assert page["total"] == 64
    codes = {
        c["code"] for e in page["entry"] for cat in e["resource"]["category"] for c in cat["coding"]
    }
    assert codes == {"vital-signs"}
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    assert "category=vital-signs" in following
    rest = live.http.get(
        following, headers={"Authorization": f"Bearer {token['access_token']}", **JSON_FHIR}
    ).json()
    assert len(rest["entry"]) == 14 and "next" not in {x["relation"] for x in rest["link"]}
    system = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    assert _get(live, token, "Observation", params={"category": system}).json()["total"] == 208


def test_grants_end_on_a_fixed_day_that_refresh_does_not_move(live: Live) -> None:
    token = _token(live)
    first = token["refresh_token_expires_in"]
    assert isinstance(first, int) and 30 * 86400 - 5 <= first <= 30 * 86400
    refreshed = live.http.post(
        f"{live.base(REGIONAL)}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=("tether", "sandbox-secret"),
    ).json()
    later = refreshed["refresh_token_expires_in"]
    assert isinstance(later, int) and first - 5 <= later <= first


def test_the_member_can_share_less_than_asked(live: Live) -> None:
    token = _token(live, withhold=("Observation", "Procedure"))
    scope = str(token["scope"]).split()
    assert "patient/*.rs" not in scope and "patient/Condition.rs" in scope
    assert "patient/Observation.rs" not in scope and "openid" in scope
    assert _get(live, token, "Observation", params={"category": "laboratory"}).status_code == 403
    assert _get(live, token, "Condition").status_code == 200
