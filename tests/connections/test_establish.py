"""Establish, view and re-establish connections through the sandbox, over real HTTP."""

from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import MemberCtx
from tether.connections.tokens import RefreshResult, refresh_connection
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.store.models import AuditEvent, Connection, FhirResource, OAuthAttempt, utcnow
from tether.testing.flow import connect, get_redirect_url

CLINIC = "sandbox-clinic"


def _connection(runtime: Runtime, member: MemberCtx, source: str = CLINIC) -> Connection | None:
    with runtime.db.read() as session:
        return session.scalar(
            select(Connection).where(
                Connection.member_id == member.member_id, Connection.data_source_id == source
            )
        )


def test_connect_view_and_shape(client, member: MemberCtx, runtime: Runtime) -> None:
    result = connect(client, member.headers, CLINIC, patient="clinic-1")
    assert result.response.status_code == 200
    assert result.status_code == "success"
    assert "window.opener.postMessage" in result.response.text
    assert "script-src 'nonce-" in result.response.headers["content-security-policy"]

    listed = client.get("/v1/connections", headers=member.headers)
    assert listed.status_code == 200
    [item] = listed.json()
    assert set(item) >= {
        "id",
        "name",
        "category",
        "type",
        "status",
        "syncStatus",
        "syncErrors",
        "created",
        "statusUpdated",
        "lastSynced",
    }
    assert item["id"] == CLINIC
    assert (item["status"], item["syncStatus"], item["category"], item["type"]) == (
        "CONNECTED",
        "PENDING",
        "OAUTH",
        "CLINICAL",
    )
    assert item["syncErrors"] == []
    one = client.get(f"/v1/connections/{CLINIC}", headers=member.headers).json()
    assert one["status"] == "CONNECTED"

    conn = _connection(runtime, member)
    assert conn is not None
    assert conn.grant_epoch == 1 and conn.patient_id == "clinic-1"
    assert conn.access_token and conn.access_token.startswith("v1.")
    assert conn.refresh_token and conn.token_expires_at is not None
    with runtime.db.read() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert actions == ["connection.authorized"]


def test_filters(client, member: MemberCtx) -> None:
    connect(client, member.headers, CLINIC, patient="clinic-1")
    connect(client, member.headers, "sandbox-lab", patient="lab-1")

    def ids(**params) -> set[str]:
        response = client.get("/v1/connections", params=params, headers=member.headers)
        assert response.status_code == 200
        return {c["id"] for c in response.json()}

    assert ids() == {CLINIC, "sandbox-lab"}
    assert ids(type="LAB") == {"sandbox-lab"}
    assert ids(status="CONNECTED", syncStatus="PENDING") == {CLINIC, "sandbox-lab"}
    assert ids(status="EXPIRED") == set()
    bad = client.get("/v1/connections", params={"status": "HAPPY"}, headers=member.headers)
    assert bad.status_code == 422


def test_return_url_allow_list(client, member: MemberCtx) -> None:
    allowed = "https://app.example.test/connected?screen=home"
    result = connect(client, member.headers, CLINIC, patient="clinic-1", return_url=allowed)
    assert result.response.status_code == 302
    query = parse_qs(urlsplit(result.response.headers["location"]).query)
    assert query == {"screen": ["home"], "status_code": ["success"], "connectionId": [CLINIC]}

    refused = client.post(
        f"/v1/connections/{CLINIC}/oauth-url",
        json={"returnUrl": "https://evil.example.test/connected"},
        headers=member.headers,
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "RETURN_URL_NOT_ALLOWED"


def test_consent_denied_creates_nothing_and_keeps_existing(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    denied = connect(client, member.headers, CLINIC, patient="clinic-1", approve=False)
    assert denied.status_code == "access_denied"
    assert _connection(runtime, member) is None

    connect(client, member.headers, CLINIC, patient="clinic-1")
    before = _connection(runtime, member)
    again = connect(client, member.headers, CLINIC, patient="clinic-1", approve=False)
    assert again.status_code == "access_denied"
    after = _connection(runtime, member)
    assert before is not None and after is not None
    assert (after.status, after.grant_epoch, after.access_token) == (
        before.status,
        before.grant_epoch,
        before.access_token,
    )


def test_unknown_retired_and_used_links(client, member: MemberCtx) -> None:
    missing = client.post("/v1/connections/nope/oauth-url", headers=member.headers)
    assert missing.status_code == 404
    retired = client.post(
        "/v1/connections/sandbox-retired-clinic/oauth-url", headers=member.headers
    )
    assert retired.status_code == 409
    assert retired.json()["code"] == "ACCESS_ENDED"

    url = get_redirect_url(client, member.headers, CLINIC)
    assert url.startswith(str(client.base_url) + "/oauth/launch/")
    with httpx.Client() as browser:
        assert browser.get(url).status_code == 302
        reused = browser.get(url)
    assert reused.status_code == 410
    assert "text/html" in reused.headers["content-type"]


def test_launch_link_expires(client, member: MemberCtx, runtime: Runtime) -> None:
    url = get_redirect_url(client, member.headers, CLINIC)
    runtime.clock = lambda: utcnow() + timedelta(seconds=runtime.settings.launch_ttl + 1)
    with httpx.Client() as browser:
        assert browser.get(url).status_code == 410


def _with_state(callback_url: str, state: str) -> str:
    parts = urlsplit(callback_url)
    query = parse_qs(parts.query)
    query["state"] = [state]
    return urlunsplit(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))


def test_tampered_replayed_and_expired_state(client, member: MemberCtx, runtime: Runtime) -> None:
    url = get_redirect_url(client, member.headers, CLINIC)
    with httpx.Client() as browser:
        launched = browser.get(url)
        from tether.sandbox.testing import complete_consent

        callback = complete_consent(browser, launched.headers["location"], patient="clinic-1")
        state = parse_qs(urlsplit(callback).query)["state"][0]
        tampered = browser.get(_with_state(callback, state[:-2] + "xx"))
        assert tampered.status_code == 400
        assert _connection(runtime, member) is None
        ok = browser.get(callback)
        assert ok.status_code == 200
        replayed = browser.get(callback)
        assert replayed.status_code == 400
        assert "already used" in replayed.text
    conn = _connection(runtime, member)
    assert conn is not None and conn.grant_epoch == 1

    # An expired state changes nothing either.
    url = get_redirect_url(client, member.headers, CLINIC)
    with httpx.Client() as browser:
        launched = browser.get(url)
        callback = complete_consent(browser, launched.headers["location"], patient="clinic-1")
        runtime.clock = lambda: utcnow() + timedelta(seconds=runtime.settings.launch_ttl + 5)
        late = browser.get(callback)
    assert late.status_code == 410
    conn = _connection(runtime, member)
    assert conn is not None and conn.grant_epoch == 1


def test_another_member_cannot_use_the_link_or_the_callback(
    client, member: MemberCtx, other_member: MemberCtx, runtime: Runtime
) -> None:
    url = get_redirect_url(client, member.headers, CLINIC)
    with httpx.Client() as alice_browser, httpx.Client() as bob_browser:
        launched = alice_browser.get(url)
        assert bob_browser.get(url).status_code == 410  # single use
        from tether.sandbox.testing import complete_consent

        callback = complete_consent(alice_browser, launched.headers["location"], patient="clinic-1")
        stolen = bob_browser.get(callback)
        assert stolen.status_code == 400
        assert "another browser" in stolen.text
        assert _connection(runtime, other_member) is None
        assert _connection(runtime, member) is None
        assert alice_browser.get(callback).status_code == 200
    assert _connection(runtime, member) is not None
    assert _connection(runtime, other_member) is None
    # Bob cannot see or address Alice's connection.
    assert client.get("/v1/connections", headers=other_member.headers).json() == []
    assert client.get(f"/v1/connections/{CLINIC}", headers=other_member.headers).status_code == 404


def test_tenant_key_cannot_act_as_member(client, member: MemberCtx) -> None:
    response = client.post(f"/v1/connections/{CLINIC}/oauth-url", headers=member.tenant.headers)
    assert response.status_code == 403
    # GET /v1/connections with the key is the tenant's list across members, not a member's.
    listing = client.get("/v1/connections", headers=member.tenant.headers)
    assert listing.status_code == 200 and set(listing.json()) == {"items", "nextAfter"}


def test_expiry_and_reestablish_keeps_data(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    connect(client, member.headers, CLINIC, patient="clinic-1")
    conn = _connection(runtime, member)
    assert conn is not None
    with runtime.db.write() as session:  # data an earlier sync brought
        session.add(
            FhirResource(
                member_id=member.member_id,
                connection_id=conn.id,
                resource_type="Patient",
                resource_id="clinic-1",
                grant_epoch=1,
                data='{"resourceType":"Patient"}',
            )
        )
    assert sandbox.revoke_all(CLINIC) >= 1
    assert (
        refresh_connection(runtime, connection_pk=conn.id, stale_sealed=None)
        == RefreshResult.EXPIRED
    )
    expired = client.get(f"/v1/connections/{CLINIC}", headers=member.headers).json()
    assert expired["status"] == "EXPIRED"
    assert expired["syncErrors"][0]["coding"][0]["code"] == "AUTHORIZATION_EXPIRED"
    assert _connection(runtime, member).access_token is None  # type: ignore[union-attr]

    again = connect(client, member.headers, CLINIC, patient="clinic-1")
    assert again.status_code == "success"
    back = client.get(f"/v1/connections/{CLINIC}", headers=member.headers).json()
    assert back["status"] == "CONNECTED" and back["syncErrors"] == []
    conn = _connection(runtime, member)
    assert conn is not None and conn.grant_epoch == 2
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(FhirResource)) == 1
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["connection.authorized", "connection.expired", "connection.authorized"]


def test_refresh_rotates_and_network_errors_never_expire(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    connect(client, member.headers, CLINIC, patient="clinic-1")
    conn = _connection(runtime, member)
    assert conn is not None
    before = (conn.access_token, conn.refresh_token)
    assert (
        refresh_connection(runtime, connection_pk=conn.id, stale_sealed=conn.access_token)
        == "refreshed"
    )
    fresh = _connection(runtime, member)
    assert fresh is not None
    assert fresh.access_token != before[0] and fresh.refresh_token != before[1]
    # A caller holding the old token finds it already refreshed: no second refresh.
    count = sandbox.counters(CLINIC).refreshes
    assert (
        refresh_connection(runtime, connection_pk=conn.id, stale_sealed=before[0])
        == "already_fresh"
    )
    assert sandbox.counters(CLINIC).refreshes == count

    sandbox.set_knobs(CLINIC, {"rate_503": 1.0, "token_endpoint_faults": True})
    from tether.errors import SourceUnavailable

    with pytest.raises(SourceUnavailable):
        refresh_connection(runtime, connection_pk=conn.id, stale_sealed=None)
    sandbox.set_knobs(CLINIC, {"rate_503": 0.0, "token_endpoint_faults": False})
    still = _connection(runtime, member)
    assert still is not None and still.status == "CONNECTED" and still.refresh_lease_until is None


def test_attempt_rows_hold_no_plain_secrets(client, member: MemberCtx, runtime: Runtime) -> None:
    result = connect(client, member.headers, CLINIC, patient="clinic-1")
    state = parse_qs(urlsplit(result.callback_url).query)["state"][0]
    token = result.redirect_url.rsplit("/", 1)[1]
    with runtime.db.read() as session:
        attempt = session.scalars(select(OAuthAttempt)).one()
    assert attempt.launch_hash != token and token not in attempt.launch_hash
    assert attempt.state_hash != state
    assert attempt.code_verifier is None  # spent
    assert attempt.outcome == "success"


def test_an_unreachable_source_gives_the_launch_link_back(
    client, member: MemberCtx, runtime: Runtime, tmp_path
) -> None:
    """Discovery fails before anything reaches the source: the page says to try again later,
    and the same link then still works (it is not spent), until it is used or expires."""
    import json

    from tether.connections.retirement import import_directory
    from tether.testing.live_server import free_port

    path = tmp_path / "dead.json"
    dead = {
        "id": "dead-clinic",
        "name": "Unreachable Clinic",
        "category": "OAUTH",
        "type": "CLINICAL",
        "fhir_base_url": f"http://127.0.0.1:{free_port()}/fhir",
        "oauth": {"client_id": "tether", "client_secret": "sandbox-secret"},
    }
    path.write_text(json.dumps([dead]))
    import_directory(runtime, path)
    link = get_redirect_url(client, member.headers, "dead-clinic")
    with httpx.Client(timeout=30) as browser:
        for _ in range(2):
            page = browser.get(link)
            assert page.status_code == 502
            assert "unavailable" in page.text and "try the link again" in page.text
    with runtime.db.read() as session:
        attempt = session.scalars(select(OAuthAttempt)).one()
    assert attempt.launched_at is None and attempt.state_hash is None


def test_the_callback_stores_only_protocol_error_codes(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    """An ``error`` value that is not an RFC 6749 code is recorded as authorization_error."""
    link = get_redirect_url(client, member.headers, CLINIC)
    with httpx.Client(timeout=30) as browser:
        authorize = browser.get(link)
        assert authorize.status_code == 302
        state = parse_qs(urlsplit(authorize.headers["location"]).query)["state"][0]
        junk = "<script>alert(1)</script> please call 555-0100"
        back = browser.get(
            f"{client.base_url}/oauth/callback", params={"state": state, "error": junk}
        )
    assert back.status_code == 200 and junk not in back.text
    with runtime.db.read() as session:
        attempt = session.scalars(select(OAuthAttempt)).one()
    assert attempt.outcome == "authorization_error"


def test_a_connect_loads_no_trust_store_of_its_own(
    client, member: MemberCtx, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every outbound request shares the process's TLS context (tether.runtime.outbound_tls):
    making one loads the whole CA bundle, about 30 ms of CPU, and the launch and the callback
    each made one or two per member before."""
    import httpx._transports.default as transports

    from tether.runtime import outbound_tls

    shared = outbound_tls()
    made: list[object] = []
    real = transports.create_ssl_context

    def counted(*args: object, **kwargs: object) -> object:
        context = real(*args, **kwargs)  # type: ignore[arg-type]
        if context is not shared:  # given the shared one, httpx hands it back
            made.append(context)
        return context

    monkeypatch.setattr(transports, "create_ssl_context", counted)
    result = connect(client, member.headers, CLINIC, patient="clinic-1")
    assert result.status_code == "success"
    assert made == []
    with runtime.http_client(source=CLINIC), runtime.http_client():
        assert made == []
    assert outbound_tls() is shared
