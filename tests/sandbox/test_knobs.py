"""Every fault knob, observed over HTTP (knobs are reset after each test)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.sandbox.conftest import CLINIC, Live, admin, bearer, connect

LAB = "sandbox-lab"


def test_admin_endpoint_needs_the_secret_and_sets_knobs(live: Live) -> None:
    url = f"{live.base()}/admin/knobs"
    assert live.http.get(url).status_code == 401
    assert (
        live.http.patch(
            url, json={"latency_ms": 5}, headers={"Authorization": "Bearer no"}
        ).status_code
        == 401
    )
    changed = live.http.patch(
        url, json={"rate_429": 0.5, "forbidden_types": "Condition"}, headers=admin()
    )
    assert changed.json()["rate_429"] == 0.5
    assert live.sandbox.knobs(CLINIC).forbidden_types == ["Condition"]
    assert live.http.patch(url, json={"rate_429": 2}, headers=admin()).status_code == 400
    assert live.http.patch(url, json={"nope": 1}, headers=admin()).status_code == 400


def test_access_token_lifetime(live: Live) -> None:
    live.sandbox.knobs(CLINIC).access_token_lifetime = 1
    token = connect(live)
    assert token["expires_in"] == 1
    time.sleep(1.1)
    answer = live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(token))
    assert answer.status_code == 401
    assert "expired" in answer.headers["www-authenticate"]


def test_expire_tokens_now_then_refresh_works(live: Live) -> None:
    token = connect(live)
    assert live.http.post(f"{live.base()}/admin/expire-tokens", headers=admin()).status_code == 200
    assert (
        live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(token)).status_code == 401
    )
    renewed = live.http.post(
        f"{live.base()}/oauth/token",
        auth=("tether", "sandbox-secret"),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert renewed.status_code == 200
    assert (
        live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(renewed.json())).status_code
        == 200
    )


def test_revoke_all_at_the_source(live: Live) -> None:
    token = connect(live)
    live.http.post(f"{live.base()}/admin/revoke-all", headers=admin())
    assert (
        live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(token)).status_code == 401
    )
    refused = live.http.post(
        f"{live.base()}/oauth/token",
        auth=("tether", "sandbox-secret"),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert refused.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_faults_are_deterministic(live: Live, status: int) -> None:
    token = connect(live)
    live.sandbox.set_knobs(CLINIC, {f"rate_{status}": 0.5, "retry_after": 7})
    statuses = [
        live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(token)) for _ in range(6)
    ]
    assert [r.status_code for r in statuses] == [200, status] * 3
    if status != 500:
        assert statuses[1].headers["retry-after"] == "7"


def test_token_endpoint_faults(live: Live) -> None:
    token = connect(live)
    live.sandbox.set_knobs(CLINIC, {"rate_503": 1.0, "token_endpoint_faults": True})
    answer = live.http.post(
        f"{live.base()}/oauth/token",
        auth=("tether", "sandbox-secret"),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert answer.status_code == 503
    assert "retry-after" in answer.headers


def test_latency_and_stall(live: Live) -> None:
    token = connect(live)
    live.sandbox.set_knobs(CLINIC, {"latency_ms": 300})
    started = time.monotonic()
    live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(token))
    assert time.monotonic() - started >= 0.3
    live.sandbox.set_knobs(CLINIC, {"latency_ms": 0, "stall_seconds": 3})
    with pytest.raises(httpx.ReadTimeout):
        live.http.get(f"{live.fhir()}/Patient/clinic-1", headers=bearer(token), timeout=0.5)


@pytest.mark.parametrize("kind", ["json", "not_bundle"])
def test_malformed_page(live: Live, kind: str) -> None:
    token = connect(live, source=LAB)
    live.sandbox.set_knobs(LAB, {"malformed_page": 2, "malformed_kind": kind})
    first = live.http.get(f"{live.fhir(LAB)}/Observation?_count=10", headers=bearer(token)).json()
    following = next(x["url"] for x in first["link"] if x["relation"] == "next")
    body = live.http.get(following, headers=bearer(token)).text
    if kind == "json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)
    else:
        assert json.loads(body)["resourceType"] != "Bundle"


def test_endless_next(live: Live) -> None:
    token = connect(live, source=LAB)
    live.sandbox.set_knobs(LAB, {"endless_next": True})
    url = f"{live.fhir(LAB)}/Patient?_count=1"
    for _ in range(5):
        page = live.http.get(url, headers=bearer(token)).json()
        url = next(x["url"] for x in page["link"] if x["relation"] == "next")
    assert page["entry"] == []


def test_forbidden_types(live: Live) -> None:
    token = connect(live)
    live.sandbox.set_knobs(CLINIC, {"forbidden_types": ["Condition"]})
    assert live.http.get(f"{live.fhir()}/Condition", headers=bearer(token)).status_code == 403
    assert live.http.get(f"{live.fhir()}/Encounter", headers=bearer(token)).status_code == 200


def test_cli_sets_knobs_through_the_admin_endpoint(live: Live) -> None:
    from typer import Typer
    from typer.testing import CliRunner

    from tether.sandbox.cli import register

    app = Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        [
            "sandbox",
            "knobs",
            CLINIC,
            "--set",
            "latency_ms=5",
            "--set",
            "forbidden_types=Condition,Procedure",
            "--url",
            live.url,
            "--admin-secret",
            "test-admin-secret",
        ],
    )
    assert result.exit_code == 0, result.output
    assert live.sandbox.knobs(CLINIC).latency_ms == 5
    assert live.sandbox.knobs(CLINIC).forbidden_types == ["Condition", "Procedure"]
