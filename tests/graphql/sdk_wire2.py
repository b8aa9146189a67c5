"""A stand-in for the health SDK's 2.0 beta client, written from /work/shared/SDK-WIRE-2.md.

The documents are 2.0's, validated against ``sdk-wire-2-schema.graphql`` and sent with the
headers and content types of ``tests.graphql.sdk_wire`` (unchanged from 1.70), all to one
endpoint (``overrides.apiUrl``). :func:`sdk_connections` builds the connection list from a
``subscriptions`` answer the way SDK-WIRE-2.md says the SDK does, dropping what it drops.
No code of the SDK is used or copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from graphql import GraphQLSchema, build_schema

from tests.graphql.sdk_wire import DOCUMENTS as DOCUMENTS_1_70
from tests.graphql.sdk_wire import SdkClient

WIRE_SCHEMA_2_FILE = Path(__file__).with_name("sdk-wire-2-schema.graphql")
WIRE_SCHEMA_2: GraphQLSchema = build_schema(WIRE_SCHEMA_2_FILE.read_text())
SOURCE = "https://icanbwell.com/proa"

_CONNECTION = "id status name category type syncStatus statusUpdated lastSynced created"

# One document per SDK call; the identity documents other than initSdk are 1.70's.
DOCUMENTS_2: dict[str, str] = {
    **{name: DOCUMENTS_1_70[name] for name in ("getToken", "login", "exchangeAuthCode", "refresh")},
    "initSdk": """query initSdk($clientKey: String!) {
      initSdk(clientKey: $clientKey) {
        logLevel
        httpClient { requestTimeout retry { interval attempts } }
        graphQLClient { apiUrl fetchPolicy cache { maxSizeBytes } }
        telemetry { enabled collectorUrl }
      }
    }""",
    "getMemberConnections": f"""query getMemberConnections {{
      subscriptions(_source: {{value: "{SOURCE}"}}) {{
        entry {{
          resource {{
            id
            meta {{ source }}
            subscriptionStatus {{
              meta {{ lastUpdated }}
              error {{ ...CodeableConceptFields }}
              extension {{ id url valueString }}
              notificationEvent {{ id timestamp }}
            }}
          }}
        }}
      }}
    }}
    fragment CodeableConceptFields on CodeableConcept {{ id text coding {{ ...CodingFields }} }}
    fragment CodingFields on Coding {{ id system code display }}""",
    "getOauthUrl": DOCUMENTS_1_70["getOauthUrl"],
    "getDataSource": """query getDataSource($connectionId: String!) {
      getDataSource(connectionId: $connectionId) { id name category type }
    }""",
    "createConnection": f"""mutation createConnection(
      $connectionId: String!, $username: String!, $password: String!
    ) {{
      createConnection(connectionId: $connectionId, username: $username, password: $password) {{
        {_CONNECTION}
      }}
    }}""",
    "disconnectConnection": DOCUMENTS_1_70["disconnectConnection"],
    "deleteConnection": DOCUMENTS_1_70["deleteConnection"],
}
UNAUTHED_2 = frozenset({"initSdk", "getToken", "login", "exchangeAuthCode", "refresh"})


def sdk2(http: httpx.Client, client_key: str) -> SdkClient:
    """The 2.0 client, its one ``apiUrl`` being ``http``'s ``/graphql``."""
    return SdkClient(
        http, client_key, documents=DOCUMENTS_2, wire=WIRE_SCHEMA_2, unauthed=UNAUTHED_2
    )


def _extensions(status: dict[str, Any]) -> dict[str, str | None]:
    return {e["id"]: e["valueString"] for e in status.get("extension") or () if e and e["id"]}


def sdk_connections(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The connections the SDK 2.0 makes of a ``subscriptions`` answer (SDK-WIRE-2.md)."""
    connections = []
    for entry in (data["subscriptions"] or {}).get("entry") or ():
        resource = (entry or {}).get("resource") or {}
        statuses = resource.get("subscriptionStatus") or []
        if not statuses:
            continue
        first = statuses[0]
        extensions, events = _extensions(first), first.get("notificationEvent") or []
        if not extensions or not events:
            continue
        kind = extensions.get("connection_type")
        connection = {
            "id": extensions.get("service_slug"),
            "status": extensions.get("token-status"),
            "name": extensions.get("connection_name"),
            "category": None if kind is None else "BASIC" if kind.lower() == "hapi" else "OAUTH",
            "type": extensions.get("category"),
            "syncStatus": extensions.get("data-connection-status"),
            "statusUpdated": (first.get("meta") or {}).get("lastUpdated"),
            "created": next((e["timestamp"] for e in events if e["id"] == "created-date"), None),
            "lastSynced": extensions.get("data-last-updated")
            or extensions.get("data-retrieval-end"),
            "syncError": first.get("error") or [],
        }
        if all(connection[key] for key in ("id", "name", "category", "type", "created")):
            connections.append(connection)
    return connections
