"""The SDK 2.0 beta's calls (SDK-WIRE-2.md), replayed over HTTP as it sends them, on the same
``/graphql`` that serves 1.70."""

from __future__ import annotations

import json

import httpx
import pytest
from graphql import GraphQLObjectType, build_schema, parse, validate

from tests.conftest import MemberCtx
from tests.graphql.sdk_wire import WIRE_SCHEMA, client_key, jwt_payload, read_answer
from tests.graphql.sdk_wire2 import DOCUMENTS_2, SOURCE, WIRE_SCHEMA_2, sdk2, sdk_connections
from tether.graphql.schema import schema

TETHER_SCHEMA = build_schema(schema.as_str())


@pytest.mark.parametrize("name", sorted(DOCUMENTS_2))
def test_every_sdk2_document_validates_against_both_schemas(name: str) -> None:
    document = parse(DOCUMENTS_2[name])
    assert validate(WIRE_SCHEMA_2, document) == []
    assert validate(TETHER_SCHEMA, document) == []


def test_the_2_0_documents_that_differ_from_1_70_do_not_fit_1_70() -> None:
    """What the issue found: 1.70's schema (tether's before) refused these two documents."""
    for name in ("initSdk", "getMemberConnections"):
        assert validate(WIRE_SCHEMA, parse(DOCUMENTS_2[name])) != [], name


def test_tether_schema_has_every_2_0_root_field_and_argument() -> None:
    for root in ("Query", "Mutation"):
        wire_root, ours = WIRE_SCHEMA_2.get_type(root), TETHER_SCHEMA.get_type(root)
        assert isinstance(wire_root, GraphQLObjectType) and isinstance(ours, GraphQLObjectType)
        for name, wire_field in wire_root.fields.items():
            assert name in ours.fields, f"{root}.{name} is missing"
            for arg, wire_arg in wire_field.args.items():
                assert str(ours.fields[name].args[arg].type) == str(wire_arg.type), (name, arg)


def test_every_row_replayed_as_2_0_sends_it(client: httpx.Client, member: MemberCtx) -> None:
    sdk = sdk2(client, client_key(member.tenant.tenant_id))

    assert sdk.initialize().data == {"initSdk": None}  # the SDK keeps its defaults

    tokens = sdk.authenticate_token(member.token)
    assert not tokens.errors and tokens.data is not None
    assert isinstance(jwt_payload(tokens.data["getToken"]["accessToken"]["jwtToken"])["exp"], int)
    login = sdk.call("login", email="alice@example.test", password="secret")
    assert login.data == {"login": None} and login.code == "LOGIN_NOT_ENABLED"
    code = sdk.call("exchangeAuthCode", authCode="abc")
    assert code.data == {"exchangeAuthCode": None} and code.code == "AUTH_CODE_NOT_ENABLED"
    refreshed = sdk.refresh()
    assert not refreshed.errors and refreshed.data is not None
    assert jwt_payload(refreshed.data["refresh"]["accessToken"])["sub"] == member.member_id

    listed = sdk.call("getMemberConnections")
    assert listed.data == {"subscriptions": {"entry": []}} and not listed.errors

    url = sdk.call("getOauthUrl", connectionId="sandbox-clinic")
    assert url.data is not None
    assert url.data["getOauthUrl"]["redirectUrl"].startswith(str(client.base_url))
    source = sdk.call("getDataSource", connectionId="sandbox-clinic")
    assert source.data is not None
    assert source.data["getDataSource"] == {
        "id": "sandbox-clinic",
        "name": "Sandbox Community Clinic",
        "category": "OAUTH",
        "type": "CLINICAL",
    }

    oauth = sdk.call("createConnection", connectionId="sandbox-clinic", username="u", password="p")
    assert oauth.data is None and oauth.code == "WRONG_CATEGORY"
    made = sdk.call(
        "createConnection",
        connectionId="sandbox-pharmacy",
        username="pharmacy-1",
        password="sandbox-password",
    )
    assert made.data is not None and not made.errors
    created = made.data["createConnection"]
    assert (created["id"], created["category"], created["status"], created["syncStatus"]) == (
        "sandbox-pharmacy",
        "BASIC",
        "CONNECTED",
        "PENDING",
    )

    listed = sdk.call("getMemberConnections")
    assert listed.data is not None
    (resource,) = [entry["resource"] for entry in listed.data["subscriptions"]["entry"]]
    assert resource["id"] == "sandbox-pharmacy" and resource["meta"] == {"source": SOURCE}
    (connection,) = sdk_connections(listed.data)
    assert {k: connection[k] for k in ("id", "category", "status", "created")} == {
        k: created[k] for k in ("id", "category", "status", "created")
    }

    for mutation in ("disconnectConnection", "deleteConnection"):
        missing = sdk.call(mutation, connectionId="sandbox-clinic")  # nothing to act on yet
        assert missing.data is None and missing.code == "UNKNOWN_CONNECTION"
    gone = sdk.call("disconnectConnection", connectionId="sandbox-pharmacy")
    assert gone.data is not None
    assert gone.data["disconnectConnection"]["status"] == "DISCONNECTED"


def _subscriptions(client: httpx.Client, member: MemberCtx, argument: str) -> dict[str, object]:
    query = f"{{ subscriptions{argument} {{ entry {{ resource {{ id }} }} }} }}"
    response = client.post("/graphql", json={"query": query}, headers=member.headers)
    return read_answer(response).__dict__


@pytest.mark.parametrize(
    ("argument", "found"),
    [
        ("", True),
        (f'(_source: {{value: "{SOURCE}"}})', True),
        (f'(_source: {{values: ["urn:other", "{SOURCE}"]}})', True),
        ('(_source: {value: "urn:other"})', False),
        (f'(_source: {{notEquals: {{value: "{SOURCE}"}}}})', False),
        ('(_source: {notEquals: {values: ["urn:other"]}})', True),
        ("(_source: {missing: true})", False),
        ("(_source: {missing: false})", True),
    ],
)
def test_the_source_search(
    client: httpx.Client, member: MemberCtx, argument: str, found: bool
) -> None:
    """Every connection subscription has meta.source SOURCE; _source searches on it."""
    made = client.post(
        "/v1/connections",
        json={
            "connectionId": "sandbox-pharmacy",
            "username": "pharmacy-1",
            "password": "sandbox-password",
        },
        headers=member.headers,
    )
    assert made.status_code == 201, made.text
    answer = _subscriptions(client, member, argument)
    assert answer["errors"] == []
    expected = [{"resource": {"id": "sandbox-pharmacy"}}] if found else []
    assert answer["data"] == {"subscriptions": {"entry": expected}}


@pytest.mark.parametrize(
    ("argument", "says"),
    [
        ('(_source: {above: "a"})', "above is not supported"),
        ('(_source: {searchType: "contains"})', "searchType is not supported"),
        (f"(_source: {{values: {json.dumps(['urn:x'] * 21)}}})", "at most 20 values"),
    ],
)
def test_a_source_search_tether_cannot_answer_is_a_clear_error(
    client: httpx.Client, member: MemberCtx, argument: str, says: str
) -> None:
    answer = _subscriptions(client, member, argument)
    assert answer["data"] == {"subscriptions": None}
    (error,) = answer["errors"]
    assert isinstance(error, dict)
    assert error["extensions"]["code"] == "INVALID_FILTER" and says in error["message"]


def test_subscriptions_need_a_member(client: httpx.Client, member: MemberCtx) -> None:
    query = {"query": DOCUMENTS_2["getMemberConnections"]}
    anonymous = read_answer(client.post("/graphql", json=query))
    assert anonymous.data == {"subscriptions": None} and anonymous.code == "UNAUTHENTICATED"
    tenant = read_answer(client.post("/graphql", json=query, headers=member.tenant.headers))
    assert tenant.data == {"subscriptions": None} and tenant.code == "FORBIDDEN"
