"""Every row of SDK-WIRE.md's table, replayed over HTTP as the SDK sends it."""

from __future__ import annotations

import json

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLObjectType,
    build_schema,
    get_named_type,
    parse,
    validate,
)

from tests.conftest import MemberCtx
from tests.graphql.sdk_wire import (
    AUTHED_CONTENT_TYPE,
    DOCUMENTS,
    WIRE_SCHEMA,
    SdkClient,
    client_key,
    jwt_payload,
    read_answer,
)
from tether.graphql.schema import schema

TETHER_SCHEMA = build_schema(schema.as_str())


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_sdk_document_validates_against_both_schemas(name: str) -> None:
    document = parse(DOCUMENTS[name])
    assert validate(WIRE_SCHEMA, document) == []
    assert validate(TETHER_SCHEMA, document) == []


def test_tether_schema_has_every_wire_root_field_argument_and_enum_value() -> None:
    for root in ("Query", "Mutation"):
        wire_root, ours = WIRE_SCHEMA.get_type(root), TETHER_SCHEMA.get_type(root)
        assert isinstance(wire_root, GraphQLObjectType) and isinstance(ours, GraphQLObjectType)
        for name, wire_field in wire_root.fields.items():
            assert name in ours.fields, f"{root}.{name} is missing"
            for arg, wire_arg in wire_field.args.items():
                assert str(ours.fields[name].args[arg].type) == str(wire_arg.type), (name, arg)
    for type_name in ("CodeableConcept", "Coding"):  # the SDK's fragments name them
        assert isinstance(TETHER_SCHEMA.get_type(type_name), GraphQLObjectType)
    wire_connection = WIRE_SCHEMA.get_type("Connection")
    our_connection = TETHER_SCHEMA.get_type("MemberConnection")
    assert isinstance(wire_connection, GraphQLObjectType)
    assert isinstance(our_connection, GraphQLObjectType)
    for name, wire_field in wire_connection.fields.items():
        wire_type = get_named_type(wire_field.type)
        our_type = get_named_type(our_connection.fields[name].type)
        if isinstance(wire_type, GraphQLEnumType):
            assert isinstance(our_type, GraphQLEnumType)
            assert set(wire_type.values) == set(our_type.values), name


def test_every_row_of_the_table(client: httpx.Client, member: MemberCtx) -> None:
    """initialize, the three credential kinds, refresh, guest, and the six connection calls."""
    sdk = SdkClient(client, client_key(member.tenant.tenant_id))

    assert sdk.initialize().data == {"initSdk": None}  # the SDK keeps its defaults

    tokens = sdk.authenticate_token(member.token)
    assert not tokens.errors and tokens.data is not None
    access = jwt_payload(tokens.data["getToken"]["accessToken"]["jwtToken"])
    assert isinstance(access["exp"], int)
    assert jwt_payload(tokens.data["getToken"]["idToken"]["jwtToken"])["sub"] == member.member_id

    login = sdk.call("login", email="alice@example.test", password="secret")
    assert login.data == {"login": None} and login.code == "LOGIN_NOT_ENABLED"
    assert login.issue_code == "not-supported"
    code = sdk.call("exchangeAuthCode", authCode="abc")
    assert code.data == {"exchangeAuthCode": None} and code.code == "AUTH_CODE_NOT_ENABLED"
    guest = sdk.call("createGuestAccessToken", clientKey=sdk.client_key)
    assert guest.data == {"createGuestAccessToken": None}
    assert guest.code == "GUEST_ACCESS_NOT_ENABLED"

    refreshed = sdk.refresh()
    assert not refreshed.errors and refreshed.data is not None
    assert jwt_payload(refreshed.data["refresh"]["accessToken"])["sub"] == member.member_id
    assert jwt_payload(refreshed.data["refresh"]["idToken"])["tid"] == member.tenant.tenant_id

    listed = sdk.connections()
    assert listed.data == {"getMemberConnections": [], "subscription_subscription": {"entry": []}}

    url = sdk.call("getOauthUrl", connectionId="sandbox-clinic")
    assert url.data is not None
    assert url.data["getOauthUrl"]["redirectUrl"].startswith(str(client.base_url))

    source = sdk.call("getDataSource", connectionId="sandbox-clinic")
    assert source.data is not None
    described = source.data["getDataSource"]
    assert described.pop("name")
    assert described == {
        "id": "sandbox-clinic",
        "category": "OAUTH",
        "type": "CLINICAL",
        "isDirect": True,
    }

    oauth = sdk.call("createConnection", connectionId="sandbox-clinic", username="u", password="p")
    assert oauth.data is None and oauth.code == "WRONG_CATEGORY"  # an OAUTH source
    wrong = sdk.call(
        "createConnection",
        connectionId="sandbox-pharmacy",
        username="pharmacy-1",
        password="not-it",
    )
    assert wrong.data is None and wrong.code == "BAD_CREDENTIALS"
    assert "not-it" not in json.dumps(wrong.error)  # the password is never echoed
    made = sdk.call(
        "createConnection",
        connectionId="sandbox-pharmacy",
        username="pharmacy-1",
        password="sandbox-password",
    )
    assert made.data is not None
    created = made.data["createConnection"]
    assert (created["id"], created["category"], created["status"]) == (
        "sandbox-pharmacy",
        "BASIC",
        "CONNECTED",
    )

    for mutation in ("disconnectConnection", "deleteConnection"):
        missing = sdk.call(mutation, connectionId="sandbox-clinic")  # nothing to act on yet
        assert missing.data is None and missing.code == "UNKNOWN_CONNECTION"
        assert missing.issue_code == "not-found"
    # (Their successful answers are checked in test_sdk_workflow.)


def test_authed_calls_accept_json_sent_as_text_plain(
    client: httpx.Client, member: MemberCtx
) -> None:
    body = json.dumps({"query": "{ getMemberConnections { id } }"})
    for content_type in (AUTHED_CONTENT_TYPE, "text/plain", "application/json", None):
        headers = {"Accept": "*/*", **member.headers}
        if content_type:
            headers["Content-Type"] = content_type
        answer = read_answer(client.post("/graphql", content=body, headers=headers))
        assert answer.data == {"getMemberConnections": []} and not answer.errors


def test_cors_preflight_allows_the_sdk_headers(client: httpx.Client) -> None:
    response = client.options(
        "/graphql",
        headers={
            "Origin": "https://app.example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": (
                "authorization,clientkey,refresh_token,content-type,accept-language"
            ),
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "clientkey", "refresh_token", "content-type", "accept-language"} <= (
        allowed
    )
    assert "access-control-allow-credentials" not in response.headers
    # Only the GraphQL endpoint is opened to other origins.
    rest = client.options(
        "/v1/connections",
        headers={"Origin": "https://app.example.test", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in rest.headers
