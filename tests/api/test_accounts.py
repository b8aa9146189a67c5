"""Accounts: members, member tokens and API keys, with tenant and member isolation."""

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from tests.conftest import MemberCtx, TenantCtx
from tests.graphql.sdk_wire import SdkClient, client_key, jwt_payload
from tether.accounts import members
from tether.errors import AuthenticationRequired
from tether.identity import api_keys, member_tokens
from tether.identity.liveness import KEY_REVOKED
from tether.runtime import Runtime
from tether.store.models import ApiKey, Member, utcnow
from tether.testing.live_server import LiveServer


def test_create_member_is_idempotent_on_external_id(client, tenant: TenantCtx) -> None:
    first = client.post("/v1/members", json={"externalId": "user-42"}, headers=tenant.headers)
    assert first.status_code == 201
    again = client.post("/v1/members", json={"externalId": "user-42"}, headers=tenant.headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["externalId"] == "user-42"


@pytest.mark.parametrize(
    "body",
    [{}, {"externalId": ""}, {"externalId": "has spaces"}, {"externalId": 5}, {"other": "x"}],
)
def test_bad_member_input_is_a_problem_and_writes_nothing(
    client, tenant: TenantCtx, runtime: Runtime, body: dict
) -> None:
    response = client.post("/v1/members", json=body, headers=tenant.headers)
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == response.status_code
    assert problem["type"].startswith("urn:tether:problem:")
    assert problem["detail"]
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Member)) == 0


def test_member_token_authenticates_member_calls(client, member: MemberCtx) -> None:
    response = client.get("/v1/data-sources", headers=member.headers)
    assert response.status_code == 200


def test_member_token_cannot_do_tenant_work(client, member: MemberCtx) -> None:
    response = client.post("/v1/members", json={"externalId": "x"}, headers=member.headers)
    assert response.status_code == 403
    assert response.json()["type"] == "urn:tether:problem:forbidden"


def _forge(claims: dict, key: str = "wrong-key") -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def test_tampered_expired_and_wrong_audience_tokens_are_rejected(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    header, payload, signature = member.token.split(".")
    tampered = f"{header}.{payload}.{signature[:-3]}abc"
    now = int(time.time())
    signing = member_tokens._signing_key(runtime.secret_key)
    base = {"iss": "tether", "sub": member.member_id, "tid": member.tenant.tenant_id, "iat": now}
    expired = _forge({**base, "aud": "tether:member", "exp": now - 10}, signing)
    wrong_aud = _forge({**base, "aud": "someone-else", "exp": now + 600}, signing)
    wrong_key = _forge({**base, "aud": "tether:member", "exp": now + 600})
    none_alg = jwt.encode({**base, "aud": "tether:member", "exp": now + 600}, None, "none")
    for token in (tampered, expired, wrong_aud, wrong_key, none_alg, "garbage"):
        response = client.get("/v1/data-sources", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["type"] == "urn:tether:problem:unauthenticated"


def test_issued_token_expires(runtime: Runtime, member: MemberCtx) -> None:
    with runtime.db.read() as session:
        issued = member_tokens.issue_member_token(
            session,
            member_id=member.member_id,
            tenant_id=member.tenant.tenant_id,
            secret_key=runtime.secret_key,
            ttl=60,
            now=utcnow() - timedelta(minutes=5),
        )
        with pytest.raises(AuthenticationRequired, match="expired"):
            member_tokens.verify_member_token(
                session, token=issued.token, secret_key=runtime.secret_key
            )


def test_disabled_member_token_stops_working(client, runtime: Runtime, member: MemberCtx) -> None:
    with runtime.db.write() as session:
        members.disable_member(
            session, member_id=member.member_id, tenant_id=member.tenant.tenant_id
        )
    assert client.get("/v1/data-sources", headers=member.headers).status_code == 401


def test_api_keys_are_stored_hashed_and_revocable(
    client, runtime: Runtime, tenant: TenantCtx
) -> None:
    secret = tenant.api_key.split("_", 2)[2]
    with runtime.db.read() as session:
        hashes = session.scalars(select(ApiKey.secret_hash)).all()
    assert hashes and all(secret not in h for h in hashes)
    if runtime.db.sqlite:
        path = runtime.settings.resolved_database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as raw:
            raw.execute("PRAGMA wal_checkpoint(FULL)")
        for suffix in ("", "-wal"):
            file = Path(path + suffix)
            if file.exists():
                assert secret.encode() not in file.read_bytes()
    assert client.get("/v1/members", headers=tenant.headers).status_code == 200
    with runtime.db.write() as session:
        api_keys.revoke_api_key(session, key_id=tenant.api_key.split("_")[1])
    revoked = client.get("/v1/members", headers=tenant.headers)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]


def test_wrong_api_key_secret_is_rejected(client, tenant: TenantCtx) -> None:
    prefix, key_id, _ = tenant.api_key.split("_", 2)
    forged = f"{prefix}_{key_id}_not-the-secret"
    response = client.get("/v1/members", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_tenants_see_only_their_own_members(
    client, tenant: TenantCtx, other_tenant: TenantCtx, member: MemberCtx
) -> None:
    # The other tenant cannot read, list or mint tokens for the first tenant's member.
    assert (
        client.get(f"/v1/members/{member.member_id}", headers=other_tenant.headers).status_code
        == 404
    )
    minted = client.post(f"/v1/members/{member.member_id}/tokens", headers=other_tenant.headers)
    assert minted.status_code == 404
    listed = client.get("/v1/members", headers=other_tenant.headers).json()
    assert listed["items"] == []
    # Creating the same external id in the other tenant makes a different member.
    mine = client.post("/v1/members", json={"externalId": "alice"}, headers=other_tenant.headers)
    assert mine.status_code == 201
    assert mine.json()["id"] != member.member_id
    # The owner can.
    own = client.post(f"/v1/members/{member.member_id}/tokens", headers=tenant.headers)
    assert own.status_code == 201
    assert (
        client.get(
            "/v1/data-sources", headers={"Authorization": f"Bearer {own.json()['token']}"}
        ).status_code
        == 200
    )


def test_members_list_pages(client, tenant: TenantCtx) -> None:
    ids = {
        client.post("/v1/members", json={"externalId": f"m{i}"}, headers=tenant.headers).json()[
            "id"
        ]
        for i in range(5)
    }
    first = client.get("/v1/members?limit=3", headers=tenant.headers).json()
    assert len(first["items"]) == 3 and first["nextAfter"]
    rest = client.get(
        f"/v1/members?limit=3&after={first['nextAfter']}", headers=tenant.headers
    ).json()
    assert {m["id"] for m in first["items"] + rest["items"]} == ids
    assert rest["nextAfter"] is None


# ---------------------------------------------------------------- what a revoked key stops
def _key_id(api_key: str) -> str:
    return api_key.split("_")[1]


def _mint(client, member: MemberCtx, api_key: str) -> str:
    response = client.post(
        f"/v1/members/{member.member_id}/tokens", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _rest(client, token: str):
    return client.get("/v1/connections", headers={"Authorization": f"Bearer {token}"})


def _graphql(client, member: MemberCtx, token: str) -> SdkClient:
    return SdkClient(client, client_key(member.tenant.tenant_id), access_token=token)


def test_revoking_an_api_key_stops_the_member_tokens_it_minted(
    client, runtime: Runtime, member: MemberCtx
) -> None:
    with runtime.db.write() as session:
        _, second_key = api_keys.create_api_key(
            session, tenant_id=member.tenant.tenant_id, pepper=runtime.secret_key
        )
    minted = _mint(client, member, member.tenant.api_key)
    by_second = _mint(client, member, second_key)
    assert jwt_payload(minted)["kid"] == _key_id(member.tenant.api_key)
    assert jwt_payload(by_second)["kid"] == _key_id(second_key)
    assert "kid" not in jwt_payload(member.token)  # minted by the operator (no API key)
    for token in (minted, by_second, member.token):
        assert _rest(client, token).status_code == 200
        assert not _graphql(client, member, token).connections().errors

    with runtime.db.write() as session:
        api_keys.revoke_api_key(session, key_id=_key_id(member.tenant.api_key))

    refused = _rest(client, minted)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["detail"] == KEY_REVOKED
    answer = _graphql(client, member, minted).connections()
    assert answer.code == "UNAUTHENTICATED" and answer.issue_code == "login"
    assert all(KEY_REVOKED in error["message"] for error in answer.errors)
    # The tenant's other key, and the operator's token, are untouched.
    for token in (by_second, member.token):
        assert _rest(client, token).status_code == 200
        assert not _graphql(client, member, token).connections().errors
    # The revoked key mints nothing more.
    again = client.post(f"/v1/members/{member.member_id}/tokens", headers=member.tenant.headers)
    assert again.status_code == 401


def test_kid_of_an_unknown_or_another_tenants_key_is_refused(
    client, runtime: Runtime, member: MemberCtx, other_tenant: TenantCtx
) -> None:
    now = int(time.time())
    signing = member_tokens._signing_key(runtime.secret_key)
    base = {
        "iss": "tether",
        "aud": "tether:member",
        "sub": member.member_id,
        "tid": member.tenant.tenant_id,
        "iat": now,
        "exp": now + 600,
    }
    own = _forge({**base, "kid": _key_id(member.tenant.api_key)}, signing)
    assert _rest(client, own).status_code == 200
    for kid in (_key_id(other_tenant.api_key), "unknown-key"):
        response = _rest(client, _forge({**base, "kid": kid}, signing))
        assert response.status_code == 401, kid
        assert response.json()["detail"] == KEY_REVOKED
    for kid in (123, "", ["x"]):
        response = _rest(client, _forge({**base, "kid": kid}, signing))
        assert response.status_code == 401, kid
        assert response.json()["detail"] == "invalid member token"
    # Nor will the service mint a token naming another tenant's key.
    with runtime.db.read() as session, pytest.raises(AuthenticationRequired):
        member_tokens.issue_member_token(
            session,
            member_id=member.member_id,
            tenant_id=member.tenant.tenant_id,
            secret_key=runtime.secret_key,
            ttl=60,
            key_id=_key_id(other_tenant.api_key),
        )


def test_revoking_an_api_key_stops_its_app_links_and_their_sessions(
    server: LiveServer, client, runtime: Runtime, member: MemberCtx
) -> None:
    def link() -> str:
        response = client.post(
            f"/v1/members/{member.member_id}/app-links", headers=member.tenant.headers
        )
        assert response.status_code == 201
        return str(response.json()["url"]).partition("#")[2]

    used, unused = link(), link()
    minted = _mint(client, member, member.tenant.api_key)
    with (
        httpx.Client(base_url=server.url, timeout=30) as by_link,
        httpx.Client(base_url=server.url, timeout=30) as by_token,
        httpx.Client(base_url=server.url, timeout=30) as by_operator,
    ):
        assert by_link.post("/app/enter", data={"token": used}).status_code == 303
        assert by_token.post("/app/session", data={"token": minted}).status_code == 200
        assert by_operator.post("/app/session", data={"token": member.token}).status_code == 200
        for browser in (by_link, by_token, by_operator):
            assert browser.get("/app").status_code == 200

        with runtime.db.write() as session:
            api_keys.revoke_api_key(session, key_id=_key_id(member.tenant.api_key))

        assert by_link.get("/app").status_code == 401
        assert by_token.get("/app").status_code == 401
        assert by_operator.get("/app").status_code == 200  # the operator's token: no key
        late = by_link.post("/app/enter", data={"token": unused})
        assert late.status_code == 401 and "set-cookie" not in late.headers
