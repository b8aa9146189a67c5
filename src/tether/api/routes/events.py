"""The tenant's event log and webhook endpoints (API key): register, list, change, rotate the
signing secret, delete, see the deliveries, replay and redeliver. Deliveries follow the
Standard Webhooks specification (docs/webhooks.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from tether import events
from tether.api.schemas import (
    EVENT_TYPE,
    EventOut,
    EventPage,
    ReplayIn,
    ReplayOut,
    WebhookDeliveryOut,
    WebhookDeliveryPage,
    WebhookEndpointCreated,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPatch,
)
from tether.audit import MAX_CURSOR
from tether.http.deps import RuntimeDep, TenantCaller
from tether.http.openapi import problems
from tether.webhooks import endpoints

router = APIRouter(tags=["events and webhooks"])

EndpointId = Annotated[str, "the endpoint's id (we_…)"]


@router.get(
    "/v1/events",
    response_model=EventPage,
    summary="The tenant's events, oldest first",
    responses=problems(404),
)
def list_events(
    tenant: TenantCaller,
    runtime: RuntimeDep,
    type: Annotated[list[EVENT_TYPE] | None, Query(description="only these types")] = None,
    member_id: Annotated[str | None, Query(alias="memberId", max_length=40)] = None,
    after: Annotated[
        str | None,
        Query(max_length=40, description="an eventId: the events committed after it"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=events.MAX_PAGE)] = 100,
) -> EventPage:
    items, next_after = events.tenant_events(
        runtime,
        tenant_id=tenant.tenant_id,
        types=type or (),
        member_id=member_id,
        after=after,
        limit=limit,
    )
    return EventPage(items=[EventOut.of(item) for item in items], next_after=next_after)


@router.post(
    "/v1/events/{event_id}/redeliver",
    response_model=ReplayOut,
    status_code=202,
    summary="Deliver one event again to every enabled endpoint that wants it",
)
def redeliver(event_id: str, tenant: TenantCaller, runtime: RuntimeDep) -> ReplayOut:
    return ReplayOut(queued=endpoints.redeliver(runtime, tenant=tenant, event_id=event_id))


@router.post(
    "/v1/webhook-endpoints",
    response_model=WebhookEndpointCreated,
    status_code=201,
    summary="Register a webhook endpoint (its signing secret is shown once)",
    responses=problems(400, 409),
)
def create_endpoint(
    body: WebhookEndpointIn, tenant: TenantCaller, runtime: RuntimeDep, response: Response
) -> WebhookEndpointCreated:
    view, secret = endpoints.create_endpoint(
        runtime,
        tenant=tenant,
        url=body.url,
        event_types=body.events,
        description=body.description,
    )
    response.headers["Location"] = f"/v1/webhook-endpoints/{view.id}"
    return WebhookEndpointCreated(**WebhookEndpointOut.of(view).model_dump(), secret=secret)


@router.get(
    "/v1/webhook-endpoints", response_model=list[WebhookEndpointOut], summary="The endpoints"
)
def list_endpoints(tenant: TenantCaller, runtime: RuntimeDep) -> list[WebhookEndpointOut]:
    return [WebhookEndpointOut.of(v) for v in endpoints.list_endpoints(runtime, tenant=tenant)]


@router.get("/v1/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointOut, summary="One")
def get_endpoint(
    endpoint_id: EndpointId, tenant: TenantCaller, runtime: RuntimeDep
) -> WebhookEndpointOut:
    return WebhookEndpointOut.of(
        endpoints.get_endpoint(runtime, tenant=tenant, endpoint_id=endpoint_id)
    )


@router.patch(
    "/v1/webhook-endpoints/{endpoint_id}",
    response_model=WebhookEndpointOut,
    summary="Change the URL, the event types, the description, or disable / enable",
    responses=problems(400),
)
def update_endpoint(
    endpoint_id: EndpointId, body: WebhookEndpointPatch, tenant: TenantCaller, runtime: RuntimeDep
) -> WebhookEndpointOut:
    return WebhookEndpointOut.of(
        endpoints.update_endpoint(
            runtime,
            tenant=tenant,
            endpoint_id=endpoint_id,
            url=body.url,
            event_types=body.events,
            description=body.description,
            disabled=body.disabled,
        )
    )


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}", status_code=204, summary="Remove the endpoint"
)
def delete_endpoint(endpoint_id: EndpointId, tenant: TenantCaller, runtime: RuntimeDep) -> Response:
    endpoints.delete_endpoint(runtime, tenant=tenant, endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointCreated,
    summary="A new signing secret; the old one keeps signing beside it for 24 hours",
)
def rotate_secret(
    endpoint_id: EndpointId, tenant: TenantCaller, runtime: RuntimeDep
) -> WebhookEndpointCreated:
    view, secret = endpoints.rotate_secret(runtime, tenant=tenant, endpoint_id=endpoint_id)
    return WebhookEndpointCreated(**WebhookEndpointOut.of(view).model_dump(), secret=secret)


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=WebhookDeliveryPage,
    summary="Deliveries to the endpoint, newest first, with their attempts",
)
def list_deliveries(
    endpoint_id: EndpointId,
    tenant: TenantCaller,
    runtime: RuntimeDep,
    state: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WebhookDeliveryPage:
    page = endpoints.deliveries(
        runtime, tenant=tenant, endpoint_id=endpoint_id, state=state, after=after, limit=limit
    )
    return WebhookDeliveryPage(
        items=[WebhookDeliveryOut.of(d) for d in page.items], next_after=page.next_after
    )


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/replay",
    response_model=ReplayOut,
    status_code=202,
    summary="Deliver again every event since a moment (at most 10,000 per call)",
    responses=problems(400, 409),
)
def replay(
    endpoint_id: EndpointId, body: ReplayIn, tenant: TenantCaller, runtime: RuntimeDep
) -> ReplayOut:
    count = endpoints.replay(runtime, tenant=tenant, endpoint_id=endpoint_id, since=body.since)
    return ReplayOut(queued=count)
