"""Each API operation as a plain description of its request and of how to read the answer.

``ConnectionManager`` and ``AsyncConnectionManager`` (and ``TenantClient``) share these, so
the sync and async clients cannot drift apart: they differ only in how they send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from tether.client import _validation as check
from tether.client._exceptions import client_validation_error
from tether.client._models import (
    AuditEventPage,
    DataSource,
    DataSourcePage,
    EventPage,
    Member,
    MemberConnection,
    MemberPage,
    MemberToken,
    OauthUrl,
    SourceType,
    Status,
    StatusUpdate,
    SyncRun,
    SyncStatus,
    TenantConnectionPage,
    WebhookDeliveryPage,
    WebhookEndpoint,
)

T = TypeVar("T")
Params = list[tuple[str, str]]
OneOrMany = Any  # E | str | Iterable[E | str] | None; spelled out on the public methods


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request: ``idempotent`` calls may be retried (see ``_transport``)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    idempotent: bool
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None


def _connection_list(data: Any) -> list[MemberConnection]:
    return [MemberConnection.from_json(c) for c in data]


def get_oauth_url(connection_id: str, return_url: str | None) -> Call[OauthUrl]:
    # Never retried: every call mints a new single-use link.
    cid = check.connection_id(connection_id)
    body = {"returnUrl": return_url} if return_url is not None else None
    return Call(
        "POST", f"/v1/connections/{cid}/oauth-url", OauthUrl.from_json, idempotent=False, json=body
    )


def get_member_connections(
    status: OneOrMany, sync_status: OneOrMany, type: OneOrMany
) -> Call[list[MemberConnection]]:
    params: Params = [("status", v) for v in check.enum_values("status", Status, status)]
    params += [("syncStatus", v) for v in check.enum_values("sync_status", SyncStatus, sync_status)]
    params += [("type", v) for v in check.enum_values("type", SourceType, type)]
    return Call("GET", "/v1/connections", _connection_list, idempotent=True, params=tuple(params))


def get_connection(connection_id: str) -> Call[MemberConnection]:
    cid = check.connection_id(connection_id)
    return Call("GET", f"/v1/connections/{cid}", MemberConnection.from_json, idempotent=True)


def get_data_source(connection_id: str) -> Call[DataSource]:
    cid = check.connection_id(connection_id)
    return Call("GET", f"/v1/data-sources/{cid}", DataSource.from_json, idempotent=True)


def search_data_sources(
    query: str | None,
    type: SourceType | str | None,
    near: str | None,
    radius: float | None,
    limit: int,
    offset: int,
) -> Call[DataSourcePage]:
    params: Params = []
    if query is not None:
        params.append(("query", query))
    params += [("type", v) for v in check.enum_values("type", SourceType, type)]
    if near is not None:
        params.append(("near", near))
    if radius is not None:
        params.append(("radius", str(radius)))
    params += [("limit", str(int(limit))), ("offset", str(int(offset)))]
    return Call(
        "GET", "/v1/data-sources", DataSourcePage.from_json, idempotent=True, params=tuple(params)
    )


def create_connection(connection_id: str, username: str, password: str) -> Call[MemberConnection]:
    # Never retried: the source sees the credentials once per call.
    body = {
        "connectionId": check.connection_id(connection_id),
        "username": check.credential("username", username),
        "password": check.credential("password", password),
    }
    return Call("POST", "/v1/connections", MemberConnection.from_json, idempotent=False, json=body)


def disconnect_connection(connection_id: str) -> Call[StatusUpdate]:
    # Idempotent server-side: disconnecting a DISCONNECTED connection answers its state.
    cid = check.connection_id(connection_id)
    return Call(
        "POST", f"/v1/connections/{cid}/disconnect", StatusUpdate.from_json, idempotent=True
    )


def delete_connection(connection_id: str) -> Call[StatusUpdate]:
    # Idempotent server-side: deleting a DELETED connection answers its state.
    cid = check.connection_id(connection_id)
    return Call("DELETE", f"/v1/connections/{cid}", StatusUpdate.from_json, idempotent=True)


def sync_now(connection_id: str) -> Call[MemberConnection]:
    # Idempotent in effect: "due now" is the same state however often it arrives, and the
    # sync job does nothing while another run for the connection is alive.
    cid = check.connection_id(connection_id)
    return Call("POST", f"/v1/connections/{cid}/sync", MemberConnection.from_json, idempotent=True)


def health_records_page(
    resource_type: str, connection_id: str | None, count: int, cursor: str | None
) -> Call[dict[str, Any]]:
    rtype = check.resource_type(resource_type)
    params: Params = [("_count", str(int(count)))]
    if connection_id is not None:
        params.append(("connectionId", check.connection_id(connection_id)))
    if cursor is not None:
        params.append(("_cursor", cursor))
    return Call("GET", f"/v1/fhir/{rtype}", _bundle, idempotent=True, params=tuple(params))


def _bundle(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise TypeError("expected a FHIR Bundle")
    return data


def bundle_resources(bundle: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            yield resource


def next_cursor(bundle: dict[str, Any]) -> str | None:
    """The ``_cursor`` of the Bundle's ``next`` link, or None on the last page.

    Only the cursor is taken from the link and the next page is asked of this client's own
    base URL, so the member token never goes to another origin (and a server behind a proxy
    whose public URL differs still pages correctly).
    """
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next":
            values = parse_qs(urlsplit(str(link.get("url", ""))).query).get("_cursor")
            if values:
                return values[0]
    return None


def create_member(external_id: str) -> Call[Member]:
    # Idempotent server-side on externalId (200 with the existing member).
    if not isinstance(external_id, str) or not external_id:
        raise client_validation_error("external id must be a non-empty string")
    return Call(
        "POST", "/v1/members", Member.from_json, idempotent=True, json={"externalId": external_id}
    )


def get_member(member_id: str) -> Call[Member]:
    mid = check.member_id(member_id)
    return Call("GET", f"/v1/members/{mid}", Member.from_json, idempotent=True)


def list_members(limit: int, after: str | None) -> Call[MemberPage]:
    params: Params = [("limit", str(int(limit)))]
    if after is not None:
        params.append(("after", after))
    return Call("GET", "/v1/members", MemberPage.from_json, idempotent=True, params=tuple(params))


def issue_member_token(member_id: str) -> Call[MemberToken]:
    # Not retried: each call mints a token.
    mid = check.member_id(member_id)
    return Call("POST", f"/v1/members/{mid}/tokens", MemberToken.from_json, idempotent=False)


def list_audit_events(limit: int, after: int | None, member_id: str | None) -> Call[AuditEventPage]:
    params: Params = [("limit", str(int(limit)))]
    if after is not None:
        params.append(("after", str(int(after))))
    if member_id is not None:
        params.append(("memberId", check.member_id(member_id)))
    return Call(
        "GET", "/v1/audit-events", AuditEventPage.from_json, idempotent=True, params=tuple(params)
    )


# ---------------------------------------------------------------- the tenant's wider view
def _path_id(name: str, value: object) -> str:
    """An id that goes into a path (we_…, evt_…): letters, digits, _ and -."""
    if not isinstance(value, str) or not value or len(value) > 60:
        raise client_validation_error(f"{name} must be a non-empty string")
    if not value.replace("_", "").replace("-", "").isalnum():
        raise client_validation_error(f"{name} {value!r} is malformed")
    return value


def list_tenant_connections(
    status: OneOrMany,
    sync_status: OneOrMany,
    sync_error: str | None,
    member_id: str | None,
    external_id: str | None,
    connection_id: str | None,
    after: int | None,
    limit: int,
) -> Call[TenantConnectionPage]:
    params: Params = [("status", s) for s in check.enum_values("status", Status, status)]
    params += [("syncStatus", s) for s in check.enum_values("sync_status", SyncStatus, sync_status)]
    if sync_error is not None:
        params.append(("syncError", sync_error))
    if member_id is not None:
        params.append(("memberId", check.member_id(member_id)))
    if external_id is not None:
        params.append(("externalId", external_id))
    if connection_id is not None:
        params.append(("connectionId", check.connection_id(connection_id)))
    if after is not None:
        params.append(("after", str(int(after))))
    params.append(("limit", str(int(limit))))
    return Call(
        "GET",
        "/v1/connections",
        TenantConnectionPage.from_json,
        idempotent=True,
        params=tuple(params),
    )


def _sync_runs(data: Any) -> list[SyncRun]:
    return [SyncRun.from_json(r) for r in data]


def sync_history(connection_id: str, limit: int) -> Call[list[SyncRun]]:
    cid = check.connection_id(connection_id)
    return Call(
        "GET",
        f"/v1/connections/{cid}/syncs",
        _sync_runs,
        idempotent=True,
        params=(("limit", str(int(limit))),),
    )


def member_sync_history(member_id: str, connection_id: str, limit: int) -> Call[list[SyncRun]]:
    mid, cid = check.member_id(member_id), check.connection_id(connection_id)
    return Call(
        "GET",
        f"/v1/members/{mid}/connections/{cid}/syncs",
        _sync_runs,
        idempotent=True,
        params=(("limit", str(int(limit))),),
    )


# ---------------------------------------------------------------- events and webhooks
def list_events(
    types: Iterable[str] | str | None, member_id: str | None, after: str | None, limit: int
) -> Call[EventPage]:
    params: Params = []
    for value in [types] if isinstance(types, str) else list(types or ()):
        params.append(("type", value))
    if member_id is not None:
        params.append(("memberId", check.member_id(member_id)))
    if after is not None:
        params.append(("after", _path_id("after", after)))
    params.append(("limit", str(int(limit))))
    return Call("GET", "/v1/events", EventPage.from_json, idempotent=True, params=tuple(params))


def _queued(data: Any) -> int:
    return int(data["queued"])


def redeliver_event(event_id: str) -> Call[int]:
    eid = _path_id("event id", event_id)
    return Call("POST", f"/v1/events/{eid}/redeliver", _queued, idempotent=False)


def create_webhook_endpoint(
    url: str, events: Iterable[str] | None, description: str
) -> Call[WebhookEndpoint]:
    if not isinstance(url, str) or not url:
        raise client_validation_error("url must be a non-empty string")
    body: dict[str, Any] = {"url": url, "description": description}
    if events is not None:
        body["events"] = list(events)
    return Call(
        "POST", "/v1/webhook-endpoints", WebhookEndpoint.from_json, idempotent=False, json=body
    )


def _endpoints(data: Any) -> list[WebhookEndpoint]:
    return [WebhookEndpoint.from_json(e) for e in data]


def list_webhook_endpoints() -> Call[list[WebhookEndpoint]]:
    return Call("GET", "/v1/webhook-endpoints", _endpoints, idempotent=True)


def get_webhook_endpoint(endpoint_id: str) -> Call[WebhookEndpoint]:
    eid = _path_id("endpoint id", endpoint_id)
    return Call("GET", f"/v1/webhook-endpoints/{eid}", WebhookEndpoint.from_json, idempotent=True)


def update_webhook_endpoint(
    endpoint_id: str,
    url: str | None,
    events: Iterable[str] | None,
    description: str | None,
    disabled: bool | None,
) -> Call[WebhookEndpoint]:
    eid = _path_id("endpoint id", endpoint_id)
    body: dict[str, Any] = {}
    if url is not None:
        body["url"] = url
    if events is not None:
        body["events"] = list(events)
    if description is not None:
        body["description"] = description
    if disabled is not None:
        body["disabled"] = bool(disabled)
    return Call(
        "PATCH",
        f"/v1/webhook-endpoints/{eid}",
        WebhookEndpoint.from_json,
        idempotent=True,
        json=body,
    )


def _nothing(_data: Any) -> None:
    return None


def delete_webhook_endpoint(endpoint_id: str) -> Call[None]:
    eid = _path_id("endpoint id", endpoint_id)
    return Call("DELETE", f"/v1/webhook-endpoints/{eid}", _nothing, idempotent=True)


def rotate_webhook_secret(endpoint_id: str) -> Call[WebhookEndpoint]:
    eid = _path_id("endpoint id", endpoint_id)
    return Call(
        "POST",
        f"/v1/webhook-endpoints/{eid}/rotate-secret",
        WebhookEndpoint.from_json,
        idempotent=False,
    )


def list_webhook_deliveries(
    endpoint_id: str, state: str | None, after: int | None, limit: int
) -> Call[WebhookDeliveryPage]:
    eid = _path_id("endpoint id", endpoint_id)
    params: Params = []
    if state is not None:
        if state not in ("pending", "delivered", "failed"):
            raise client_validation_error("state must be pending, delivered or failed")
        params.append(("state", state))
    if after is not None:
        params.append(("after", str(int(after))))
    params.append(("limit", str(int(limit))))
    return Call(
        "GET",
        f"/v1/webhook-endpoints/{eid}/deliveries",
        WebhookDeliveryPage.from_json,
        idempotent=True,
        params=tuple(params),
    )


def replay_webhook_endpoint(endpoint_id: str, since: datetime) -> Call[int]:
    eid = _path_id("endpoint id", endpoint_id)
    if not isinstance(since, datetime) or since.tzinfo is None:
        raise client_validation_error("since must be a timezone-aware datetime")
    return Call(
        "POST",
        f"/v1/webhook-endpoints/{eid}/replay",
        _queued,
        idempotent=False,
        json={"since": since.isoformat()},
    )
