"""tether's GraphQL (issue #7): the connection operations, same services and answers as REST."""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from sqlalchemy import select

from tests.conftest import MemberCtx
from tests.graphql.sdk_wire import Answer, read_answer
from tether.connections.deletion import run_delete
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.store.models import Connection
from tether.sync.run import run_sync
from tether.testing.flow import authorize_in_browser, connect

CLINIC, LAB = "sandbox-clinic", "sandbox-lab"
CONNECTION_FIELDS = (
    "id name category type status syncStatus "
    "syncErrors { text coding { system code display } } created statusUpdated lastSynced "
    "authorizationExpires notShared"
)
LIST = f"""query list($status: [String!], $syncStatus: [String!], $type: [String!]) {{
  getMemberConnections(status: $status, syncStatus: $syncStatus, type: $type) {{
    {CONNECTION_FIELDS}
  }}
}}"""
OAUTH_URL = """query url($id: String!, $returnUrl: String) {
  getOauthUrl(connectionId: $id, returnUrl: $returnUrl) { redirectUrl }
}"""
UPDATE = "{ status statusUpdated syncStatus }"
DISCONNECT = f"mutation d($id: String!) {{ disconnectConnection(connectionId: $id) {UPDATE} }}"
DELETE = f"mutation d($id: String!) {{ deleteConnection(connectionId: $id) {UPDATE} }}"
DATA_SOURCE = "query s($id: String!) { getDataSource(connectionId: $id) { id name category type } }"


def gql(client: httpx.Client, member: MemberCtx, query: str, **variables: Any) -> Answer:
    response = client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=member.headers
    )
    return read_answer(response)


class Api(Protocol):
    def connect(self, source: str) -> None: ...
    def connections(self, **filters: list[str]) -> list[dict[str, Any]]: ...
    def disconnect(self, source: str) -> dict[str, Any]: ...
    def delete(self, source: str) -> dict[str, Any]: ...


class Rest:
    def __init__(self, client: httpx.Client, member: MemberCtx) -> None:
        self.client, self.member = client, member

    def connect(self, source: str) -> None:
        assert connect(
            self.client, self.member.headers, source, patient="clinic-1"
        ).status_code == ("success")

    def connections(self, **filters: list[str]) -> list[dict[str, Any]]:
        response = self.client.get("/v1/connections", params=filters, headers=self.member.headers)
        assert response.status_code == 200
        rows: list[dict[str, Any]] = response.json()
        return rows

    def disconnect(self, source: str) -> dict[str, Any]:
        response = self.client.post(
            f"/v1/connections/{source}/disconnect", headers=self.member.headers
        )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def delete(self, source: str) -> dict[str, Any]:
        response = self.client.delete(f"/v1/connections/{source}", headers=self.member.headers)
        assert response.status_code == 202
        body: dict[str, Any] = response.json()
        return body


class GraphQL:
    def __init__(self, client: httpx.Client, member: MemberCtx) -> None:
        self.client, self.member = client, member

    def _data(self, query: str, **variables: Any) -> dict[str, Any]:
        answer = gql(self.client, self.member, query, **variables)
        assert not answer.errors and answer.data is not None, answer.errors
        return answer.data

    def connect(self, source: str) -> None:
        url = self._data(OAUTH_URL, id=source)["getOauthUrl"]["redirectUrl"]
        with httpx.Client(timeout=30) as browser:
            assert authorize_in_browser(browser, url, patient="clinic-1").status_code == "success"

    def connections(self, **filters: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._data(LIST, **filters)["getMemberConnections"]
        return rows

    def disconnect(self, source: str) -> dict[str, Any]:
        update: dict[str, Any] = self._data(DISCONNECT, id=source)["disconnectConnection"]
        return update

    def delete(self, source: str) -> dict[str, Any]:
        update: dict[str, Any] = self._data(DELETE, id=source)["deleteConnection"]
        return update


TIMESTAMPS = ("created", "statusUpdated", "lastSynced", "authorizationExpires")


def _comparable(value: Any) -> Any:
    """Drop what differs between two members' runs (timestamps: only whether they are set)."""
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {
            k: (v is not None if k in TIMESTAMPS else _comparable(v))
            for k, v in value.items()
            if k not in ("resourceCounts", "nextSync")
        }
    return value


def _lifecycle(api: Api, runtime: Runtime, member: MemberCtx, sandbox: Sandbox) -> list[Any]:
    def grant() -> tuple[int, int]:
        with runtime.db.read() as session:
            conn = session.scalars(
                select(Connection).where(
                    Connection.member_id == member.member_id, Connection.data_source_id == CLINIC
                )
            ).one()
            return conn.id, conn.grant_epoch

    log: list[Any] = []

    def step(value: Any) -> None:
        log.append(_comparable(value))

    api.connect(CLINIC)
    step(api.connections())
    sandbox.set_knobs(CLINIC, {"forbidden_types": ["Observation"]})
    try:
        pk, epoch = grant()
        run_sync(runtime, connection_pk=pk, epoch=epoch)
    finally:
        sandbox.reset(CLINIC)
    step(api.connections())
    step(api.connections(status=["CONNECTED"], syncStatus=["RETRIEVED"], type=["CLINICAL"]))
    step(api.connections(status=["DISCONNECTED"]))
    step(api.connections(type=["LAB"]))
    step(api.disconnect(CLINIC))
    step(api.connections())
    api.connect(CLINIC)
    step(api.connections())
    step(api.delete(CLINIC))
    step(api.connections(syncStatus=["DELETING"]))
    pk, epoch = grant()
    run_delete(runtime, connection_pk=pk, epoch=epoch)
    step(api.connections())
    return log


def test_the_same_lifecycle_through_rest_and_graphql_gives_the_same_answers(
    client: httpx.Client,
    member: MemberCtx,
    other_member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    through_rest = _lifecycle(Rest(client, member), runtime, member, sandbox)
    through_graphql = _lifecycle(GraphQL(client, other_member), runtime, other_member, sandbox)
    assert through_graphql == through_rest
    assert through_rest[1][0]["syncErrors"]  # the sync errors were compared too
    assert through_rest[-1][0]["syncStatus"] == "DATA_DELETED"
    # For one member, GraphQL renders exactly what REST renders, timestamps included.
    rest_view = Rest(client, other_member).connections()
    graphql_view = GraphQL(client, other_member).connections()
    assert graphql_view == [{k: row[k] for k in graphql_view[0]} for row in rest_view]


def test_members_see_only_their_own_connections(
    client: httpx.Client, member: MemberCtx, other_member: MemberCtx
) -> None:
    Rest(client, member).connect(CLINIC)
    assert GraphQL(client, other_member).connections() == []
    theirs = gql(client, other_member, DISCONNECT, id=CLINIC)
    assert theirs.code == "UNKNOWN_CONNECTION"  # another member's connection is not found
    assert [c["id"] for c in GraphQL(client, member).connections()] == [CLINIC]


def test_get_oauth_url_and_get_data_source(client: httpx.Client, member: MemberCtx) -> None:
    allowed = "https://app.example.test/connected?from=graphql"
    answer = gql(client, member, OAUTH_URL, id=LAB, returnUrl=allowed)
    assert answer.data is not None
    assert "/oauth/launch/" in answer.data["getOauthUrl"]["redirectUrl"]
    refused = gql(client, member, OAUTH_URL, id=LAB, returnUrl="https://evil.example/")
    assert refused.code == "RETURN_URL_NOT_ALLOWED" and refused.issue_code == "invalid"
    source = gql(client, member, DATA_SOURCE, id=LAB)
    rest = client.get(f"/v1/data-sources/{LAB}", headers=member.headers).json()
    assert source.data == {
        "getDataSource": {k: rest[k] for k in ("id", "name", "category", "type")}
    }


def test_problem_extensions_match_rest_problems(client: httpx.Client, member: MemberCtx) -> None:
    rest = client.get("/v1/data-sources/nope", headers=member.headers).json()
    answer = gql(client, member, DATA_SOURCE, id="nope")
    extensions = answer.error["extensions"]
    assert (extensions["type"], extensions["status"], extensions["code"]) == (
        rest["type"],
        rest["status"],
        rest["code"],
    )
    assert answer.error["message"] == rest["detail"]
    assert extensions["resource"]["issue"][0]["details"]["text"] == rest["detail"]
