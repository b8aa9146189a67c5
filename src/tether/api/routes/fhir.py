"""The member's health data as FHIR searchset Bundles (member token)."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from tether.data.records import MAX_COUNT, MAX_CURSOR, read_records
from tether.http.deps import MemberCaller, RuntimeDep

router = APIRouter(prefix="/v1/fhir", tags=["health data"])
FHIR_JSON = "application/fhir+json"


@router.get(
    "/{resource_type}",
    summary="The member's stored resources of one type, as a searchset Bundle",
    response_class=Response,
    responses={200: {"content": {FHIR_JSON: {}}}},
)
def search(
    member: MemberCaller,
    runtime: RuntimeDep,
    resource_type: Annotated[str, Path(pattern=r"^[A-Z][A-Za-z]{1,63}$")],
    count: Annotated[int, Query(alias="_count", ge=1, le=MAX_COUNT)] = 50,
    cursor: Annotated[int | None, Query(alias="_cursor", ge=0, le=MAX_CURSOR)] = None,
    connection_id: Annotated[str | None, Query(alias="connectionId", max_length=100)] = None,
) -> Response:
    page = read_records(
        runtime,
        member=member,
        resource_type=resource_type,
        connection_id=connection_id,
        count=count,
        after=cursor,
    )
    base = f"{runtime.settings.public_base_url}/v1/fhir/{resource_type}"
    params: dict[str, str] = {"_count": str(count)}
    if connection_id:
        params["connectionId"] = connection_id
    links = [{"relation": "self", "url": f"{base}?{urlencode(params)}"}]
    if page.next_after is not None:
        links.append(
            {
                "relation": "next",
                "url": f"{base}?{urlencode({**params, '_cursor': page.next_after})}",
            }
        )
    # The stored JSON is spliced in as is: no parse and re-serialise per resource.
    head = json.dumps({"resourceType": "Bundle", "type": "searchset", "link": links})
    entries = ",".join(
        '{"resource":' + data + ',"search":{"mode":"match"}}' for data in page.resources
    )
    body = head[:-1] + ',"entry":[' + entries + "]}"
    return Response(body, media_type=FHIR_JSON)
