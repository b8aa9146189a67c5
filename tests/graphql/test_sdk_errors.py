"""Every error on /graphql is HTTP 200 with OperationOutcome extensions (SDK-WIRE.md, 2)."""

from __future__ import annotations

import json

import httpx

from tests.conftest import MemberCtx
from tests.graphql.sdk_wire import (
    AUTHED_CONTENT_TYPE,
    DOCUMENTS,
    Answer,
    SdkClient,
    client_key,
    read_answer,
)

SDK_HEADERS = {"Content-Type": AUTHED_CONTENT_TYPE, "Accept": "*/*"}


def _post(client: httpx.Client, body: str | bytes, **headers: str) -> Answer:
    return read_answer(client.post("/graphql", content=body, headers={**SDK_HEADERS, **headers}))


def test_bad_tokens_answer_a_login_outcome(client: httpx.Client, member: MemberCtx) -> None:
    sdk = SdkClient(client, client_key(member.tenant.tenant_id), access_token="not-a-token")
    for answer in (sdk.connections(), sdk.call("getOauthUrl", connectionId="sandbox-clinic")):
        assert answer.data is None and answer.code == "UNAUTHENTICATED"
        assert answer.issue_code == "login"
        assert {error["extensions"]["status"] for error in answer.errors} == {401}
    forged = member.token[:-4] + ("AAAA" if not member.token.endswith("AAAA") else "BBBB")
    sdk.access_token = forged
    assert sdk.call("disconnectConnection", connectionId="sandbox-clinic").issue_code == "login"
    no_header = _post(
        client,
        json.dumps(
            {"query": DOCUMENTS["getOauthUrl"], "variables": {"connectionId": "sandbox-clinic"}}
        ),
    )
    assert no_header.code == "UNAUTHENTICATED"


def test_an_api_key_is_not_a_member(client: httpx.Client, member: MemberCtx) -> None:
    sdk = SdkClient(client, client_key(member.tenant.tenant_id), access_token=member.tenant.api_key)
    listed = sdk.connections()  # an error for one or both of its root fields
    assert listed.data is None
    assert listed.issue_code == "forbidden"
    assert sdk.call("getOauthUrl", connectionId="sandbox-clinic").issue_code == "forbidden"
    # getDataSource takes either credential, as in REST.
    assert not sdk.call("getDataSource", connectionId="sandbox-clinic").errors


def test_unknown_connection_and_source(client: httpx.Client, member: MemberCtx) -> None:
    sdk = SdkClient(client, client_key(member.tenant.tenant_id), access_token=member.token)
    source = sdk.call("getDataSource", connectionId="nope")
    assert source.data is None and source.code == "UNKNOWN_DATA_SOURCE"
    assert source.issue_code == "not-found" and source.error["path"] == ["getDataSource"]
    assert sdk.call("getOauthUrl", connectionId="nope").code == "UNKNOWN_DATA_SOURCE"
    assert sdk.call("deleteConnection", connectionId="nope").code == "UNKNOWN_CONNECTION"


def test_validation_errors(client: httpx.Client, member: MemberCtx) -> None:
    wrong_type = _post(
        client,
        json.dumps({"query": DOCUMENTS["getOauthUrl"], "variables": {"connectionId": 42}}),
        **member.headers,
    )
    assert wrong_type.data is None and wrong_type.code == "GRAPHQL_VALIDATION_FAILED"
    assert wrong_type.issue_code == "invalid"
    literal = _post(
        client, json.dumps({"query": "{ getOauthUrl(connectionId: 42) { redirectUrl } }"})
    )
    assert literal.code == "GRAPHQL_VALIDATION_FAILED"
    unknown_field = _post(client, json.dumps({"query": "{ getMemberConnections { nope } }"}))
    assert unknown_field.code == "GRAPHQL_VALIDATION_FAILED"
    assert "nope" in unknown_field.error["message"]
    bad_filter = _post(
        client,
        json.dumps({"query": '{ getMemberConnections(status: ["NOPE"]) { id } }'}),
        **member.headers,
    )
    assert bad_filter.code == "INVALID_FILTER" and bad_filter.issue_code == "invalid"


def test_syntax_errors(client: httpx.Client) -> None:
    answer = _post(client, json.dumps({"query": "{ getMemberConnections { id "}))
    assert answer.data is None and answer.code == "GRAPHQL_PARSE_FAILED"
    assert answer.issue_code == "structure"


UNREADABLE = [
    (b"{not json", "BAD_REQUEST"),
    (b"[]", "BAD_REQUEST"),  # batching is off
    (b'"just a string"', "BAD_REQUEST"),
    (b"{}", "BAD_REQUEST"),  # no query
    (json.dumps({"query": "{ __typename }", "variables": [1]}).encode(), "BAD_REQUEST"),
    (b"{" + b" " * 70_000 + b"}", "REQUEST_TOO_LARGE"),
]


def test_unreadable_requests(client: httpx.Client) -> None:
    for body, code in UNREADABLE:
        answer = _post(client, body)
        assert answer.data is None and answer.code == code, body[:40]


def test_get_is_answered_too(client: httpx.Client) -> None:
    for params in ({}, {"query": "{ __typename }"}):
        answer = read_answer(client.get("/graphql", params=params, headers={"Accept": "*/*"}))
        assert answer.data is None and answer.errors


def test_limits(client: httpx.Client) -> None:
    sdk_depth = DOCUMENTS["getMemberConnections"]  # the deepest document the SDK sends
    assert not _post(client, json.dumps({"query": sdk_depth})).code.startswith("QUERY_TOO")
    deep = "{ " + "f { " * 12 + "g" + " }" * 13  # deeper than any real document
    codes = {e["extensions"]["code"] for e in _post(client, json.dumps({"query": deep})).errors}
    assert "QUERY_TOO_DEEP" in codes
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(20)) + " }"
    assert _post(client, json.dumps({"query": aliases})).code == "QUERY_TOO_COMPLEX"
    tokens = "{ " + " ".join(["__typename"] * 2100) + " }"
    assert _post(client, json.dumps({"query": tokens})).code == "QUERY_TOO_COMPLEX"
