"""A stand-in for the health SDK's client, written from the wire facts (/work/shared/SDK-WIRE.md).

Every document here is validated against ``sdk-wire-schema.graphql`` (the schema that
validates every document the SDK sends) before it is sent, with the headers and content
types the SDK uses; every successful answer is checked against that schema's shapes by
executing the document over the answer, and every error against the OperationOutcome shape
the SDK turns into an error. No code of the SDK is used or copied.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from graphql import GraphQLSchema, build_schema, execute, parse, validate

WIRE_SCHEMA_FILE = Path(__file__).with_name("sdk-wire-schema.graphql")
WIRE_SCHEMA: GraphQLSchema = build_schema(WIRE_SCHEMA_FILE.read_text())
ENDPOINT = "/graphql"
AUTHED_CONTENT_TYPE = "text/plain;charset=UTF-8"

_TOKENS = "accessToken { jwtToken } idToken { jwtToken } refreshToken { token }"
_CONNECTION = (
    "id name category type status syncStatus statusUpdated lastSynced created isDirect "
    "integrationType"
)
_FRAGMENTS = """
fragment CodeableConceptFields on CodeableConcept { text coding { ...CodingFields } }
fragment CodingFields on Coding { system code display }
"""

# One document per SDK call (SDK-WIRE.md, "Requests").
DOCUMENTS: dict[str, str] = {
    "initSdk": """query initSdk($clientKey: String!) {
      initSdk(clientKey: $clientKey) {
        logLevel
        httpClient { requestTimeout retry { interval attempts } }
        graphQLClient { url authUrl fetchPolicy cache { maxSizeBytes } }
        telemetry { enabled collectorUrl }
      }
    }""",
    "getToken": f"query getToken {{ getToken {{ {_TOKENS} }} }}",
    "login": f"""query login($email: String!, $password: String!) {{
      login(email: $email, password: $password) {{ {_TOKENS} }}
    }}""",
    "exchangeAuthCode": f"""mutation exchangeAuthCode($authCode: String!) {{
      exchangeAuthCode(authCode: $authCode) {{ {_TOKENS} }}
    }}""",
    "refresh": "query refresh { refresh { accessToken idToken } }",
    "createGuestAccessToken": """mutation createGuestAccessToken($clientKey: String!) {
      createGuestAccessToken(clientKey: $clientKey) {
        accessToken refreshToken identityToken tokenType issuedAt expiresIn
      }
    }""",
    "getMemberConnections": f"""query getMemberConnections($integrationType: [String!]) {{
      getMemberConnections(integrationType: $integrationType) {{ {_CONNECTION} }}
      subscription_subscription {{
        entry {{
          resource {{
            service_slug
            subscriptionStatus {{
              error {{ ...CodeableConceptFields }}
              extension {{ id url valueString }}
            }}
          }}
        }}
      }}
    }}
    {_FRAGMENTS}""",
    "getOauthUrl": """query getOauthUrl($connectionId: String!) {
      getOauthUrl(connectionId: $connectionId) { redirectUrl }
    }""",
    "getDataSource": """query getDataSource($connectionId: String!) {
      getDataSource(connectionId: $connectionId) { id name category type isDirect }
    }""",
    "createConnection": f"""mutation createConnection(
      $connectionId: String!, $username: String!, $password: String!
    ) {{
      createConnection(connectionId: $connectionId, username: $username, password: $password) {{
        {_CONNECTION}
      }}
    }}""",
    "disconnectConnection": """mutation disconnectConnection($connectionId: String!) {
      disconnectConnection(connectionId: $connectionId) { status statusUpdated }
    }""",
    "deleteConnection": """mutation deleteConnection($connectionId: String!) {
      deleteConnection(connectionId: $connectionId) { status statusUpdated }
    }""",
}
UNAUTHED = frozenset(
    {"initSdk", "getToken", "login", "exchangeAuthCode", "refresh", "createGuestAccessToken"}
)
ISSUE_SEVERITIES = frozenset({"fatal", "error", "warning", "information"})


def client_key(tenant_id: str, env: str = "tether") -> str:
    return base64.b64encode(json.dumps({"env": env, "tenant": tenant_id}).encode()).decode()


def jwt_payload(token: str) -> dict[str, Any]:
    """The JSON payload of a three-part JWT (asserting that it is one)."""
    parts = token.split(".")
    assert len(parts) == 3 and all(parts), "not a three-part JWT"
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * 4))
    return payload


def validate_against_wire(document: str, wire: GraphQLSchema = WIRE_SCHEMA) -> None:
    errors = validate(wire, parse(document))
    assert errors == [], f"document does not fit the SDK's wire schema: {errors}"


def check_shape(
    document: str,
    variables: dict[str, Any] | None,
    data: dict[str, Any],
    wire: GraphQLSchema = WIRE_SCHEMA,
) -> None:
    """Execute ``document`` over ``data`` with the wire schema: the result must be ``data``.

    Nullability, enum values, scalar kinds and the exact set of keys are all checked.
    """
    result = execute(wire, parse(document), root_value=data, variable_values=variables)
    assert result.errors is None, f"answer does not fit the wire schema: {result.errors}"
    assert result.data == data


def check_outcome(error: dict[str, Any]) -> dict[str, Any]:
    """An error the SDK turns into an OperationOutcome error; returns its issue."""
    extensions = error["extensions"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(extensions["code"], str) and extensions["code"]
    resource = extensions["resource"]
    assert resource["resourceType"] == "OperationOutcome"
    assert isinstance(resource["issue"], list) and resource["issue"]
    for issue in resource["issue"]:
        assert issue["severity"] in ISSUE_SEVERITIES  # a lower-case string
        assert isinstance(issue["code"], str) and issue["code"]
        assert isinstance(issue["details"]["text"], str) and issue["details"]["text"]
    issue: dict[str, Any] = resource["issue"][0]
    return issue


@dataclass
class Answer:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error(self) -> dict[str, Any]:
        assert len(self.errors) == 1, self.errors
        return self.errors[0]

    @property
    def code(self) -> str:
        """The one ``extensions.code`` of every error (one per failing root field)."""
        codes = {error["extensions"]["code"] for error in self.errors}
        assert len(codes) == 1, self.errors
        return str(codes.pop())

    @property
    def issue_code(self) -> str:
        """The one OperationOutcome issue code of every error."""
        codes = {check_outcome(error)["code"] for error in self.errors}
        assert len(codes) == 1, self.errors
        return str(codes.pop())


def read_answer(response: httpx.Response) -> Answer:
    """Status 200, JSON; errors in the OperationOutcome shape (what the SDK requires)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    errors = body.get("errors") or []
    for error in errors:
        check_outcome(error)
    return Answer(data=body.get("data"), errors=errors)


@dataclass
class SdkClient:
    """Sends what the SDK sends: ``unauthed`` identity calls, ``authed`` connection calls.

    By default the 1.70 client; ``documents``, ``wire`` and ``unauthed`` make it another
    version's (``tests.graphql.sdk_wire2``).
    """

    http: httpx.Client
    client_key: str
    access_token: str | None = None
    refresh_token: str | None = None
    documents: Mapping[str, str] = field(default_factory=lambda: DOCUMENTS)
    wire: GraphQLSchema = WIRE_SCHEMA
    unauthed: frozenset[str] = UNAUTHED

    def send(
        self,
        name: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        document = self.documents[name]
        validate_against_wire(document, self.wire)
        body = {"query": document, "variables": variables or {}, "operationName": name}
        if name in self.unauthed:
            sent = {"Content-Type": "application/json", **(headers or {})}
        else:
            sent = {
                "Content-Type": AUTHED_CONTENT_TYPE,
                "Accept": "*/*",
                "Authorization": f"Bearer {self.access_token}",
                **(headers or {}),
            }
        response = self.http.post(ENDPOINT, content=json.dumps(body), headers=sent)
        answer = read_answer(response)
        if answer.data is not None and not answer.errors:
            check_shape(document, variables, answer.data, self.wire)
        return answer

    # -- the SDK's calls -------------------------------------------------------------------
    def initialize(self) -> Answer:
        return self.send("initSdk", {"clientKey": self.client_key})

    def authenticate_token(self, member_token: str) -> Answer:
        answer = self.send(
            "getToken", headers={"Authorization": member_token, "ClientKey": self.client_key}
        )
        if answer.data and answer.data["getToken"]:
            tokens = answer.data["getToken"]
            self.access_token = tokens["accessToken"]["jwtToken"]
            self.refresh_token = tokens["refreshToken"]["token"]
        return answer

    def refresh(self) -> Answer:
        answer = self.send(
            "refresh",
            headers={"refresh_token": self.refresh_token or "", "clientkey": self.client_key},
        )
        if answer.data and answer.data["refresh"]:
            self.access_token = answer.data["refresh"]["accessToken"]
        return answer

    def connections(self, integration_type: list[str] | None = None) -> Answer:
        return self.send("getMemberConnections", {"integrationType": integration_type})

    def call(self, name: str, **variables: Any) -> Answer:
        return self.send(name, variables)
