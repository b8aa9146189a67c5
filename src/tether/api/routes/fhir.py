"""The FHIR R4 API over the stored data, and FHIR Bulk Data export (docs/fhir.md).

Two bases answer the same interactions: ``/v1/fhir`` (a member token: the member's own data;
the tenant's API key: every member's) and ``/v1/members/{memberId}/fhir`` (the API key, one
member). Resources are the stored JSON texts, spliced into Bundles as they are. Errors are
OperationOutcomes (``tether.http.rfc9457``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path, Request, status
from starlette.responses import Response, StreamingResponse

from tether.data import exports
from tether.data.fhir import (
    Found,
    Page,
    Scope,
    everything,
    read_resource,
    scope_of,
    search_resources,
)
from tether.data.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    DateClause,
    SearchError,
    parse_search,
    search_parameters,
)
from tether.domain import STORED_TYPES
from tether.fhir.search_values import date_range
from tether.http.deps import AnyCaller, RuntimeDep
from tether.http.openapi import fhir_errors
from tether.http.rfc9457 import FHIR_JSON
from tether.runtime import Runtime

TYPE = r"^[A-Z][A-Za-z]{1,63}$"
ID = r"^[A-Za-z0-9\-\.]{1,64}$"
MEMBER = r"^[A-Za-z0-9_\-]{1,40}$"
FHIR_VERSION = "4.0.1"
Responses = dict[int | str, dict[str, Any]]
BUNDLE: Responses = {200: {"description": "A FHIR Bundle", "content": {FHIR_JSON: {"schema": {}}}}}
RESOURCE: Responses = {
    200: {"description": "A FHIR resource", "content": {FHIR_JSON: {"schema": {}}}}
}

tenant_wide = APIRouter(prefix="/v1/fhir", tags=["FHIR data"])
one_member = APIRouter(prefix="/v1/members/{member_id}/fhir", tags=["FHIR data"])
MemberId = Annotated[str, Path(pattern=MEMBER, description="tether's member id")]
ResourceType = Annotated[str, Path(pattern=TYPE)]
ResourceId = Annotated[str, Path(pattern=ID)]
Prefer = Annotated[str | None, Header(max_length=200)]


def _strict(prefer: str | None) -> bool:
    """``Prefer: handling=strict`` (FHIR §3.1.1.3); lenient otherwise."""
    return "handling=strict" in (prefer or "").replace(" ", "")


def _base(runtime: Runtime, member_id: str | None) -> str:
    root = runtime.settings.public_base_url
    return f"{root}/v1/members/{member_id}/fhir" if member_id else f"{root}/v1/fhir"


def _fhir(body: str | bytes, status_code: int = 200, **headers: str) -> Response:
    return Response(body, status_code=status_code, media_type=FHIR_JSON, headers=headers or None)


def _bundle(
    base: str,
    self_url: str,
    page: Page,
    next_url: str | None,
    *,
    total: int | None = None,
) -> Response:
    """A searchset Bundle with the stored JSON spliced in: no parse, no re-serialise."""
    head: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        head["total"] = total
    head["link"] = [{"relation": "self", "url": self_url}]
    if next_url:
        head["link"].append({"relation": "next", "url": next_url})
    text = json.dumps(head)
    entries = ",".join(_entry(base, found) for found in page.resources)
    return _fhir(text[:-1] + ',"entry":[' + entries + "]}")


def _entry(base: str, found: Found) -> str:
    rtype, rid, data = found
    return (
        '{"fullUrl":'
        + json.dumps(f"{base}/{rtype}/{rid}")
        + ',"resource":'
        + data
        + ',"search":{"mode":"match"}}'
    )


# ---------------------------------------------------------------------------- capability
def metadata(runtime: Runtime, member_id: str | None) -> Response:
    base = _base(runtime, member_id)
    resources = []
    for rtype in STORED_TYPES:
        params = search_parameters(rtype)
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": name, "type": kind} for name, kind in params.items()],
        }
        if rtype == "Patient":
            entry["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                },
                {
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                },
            ]
        resources.append(entry)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-04",
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "software": {"name": "tether"},
        "implementation": {"description": "tether: members' connected health data", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", FHIR_JSON],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read-only. Search: repeat a parameter for AND, commas for OR. "
                "Prefer: handling=strict refuses unknown parameters; lenient (the default) "
                "ignores them.",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "Bearer: the tenant's API key, or a member token",
                },
                "resource": resources,
                "operation": [
                    {
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                    }
                ],
            }
        ],
    }
    return _fhir(json.dumps(statement))


# ---------------------------------------------------------------------------- search, read
def search(
    runtime: Runtime, request: Request, scope: Scope, rtype: str, prefer: str | None
) -> Response:
    pairs = list(request.query_params.multi_items())
    query = parse_search(rtype, pairs, strict=_strict(prefer))
    page = search_resources(runtime, scope, query)
    base = _base(runtime, scope.member_id if request.path_params.get("member_id") else None)
    used = [*query.used]
    if not any(name == "_count" for name, _ in used):
        used.append(("_count", str(query.count)))
    self_url = f"{base}/{rtype}?{urlencode(used)}"
    next_url = None
    if page.next_after is not None:
        next_url = f"{base}/{rtype}?{urlencode([*used, ('_cursor', str(page.next_after))])}"
    return _bundle(base, self_url, page, next_url, total=page.total)


def read(runtime: Runtime, scope: Scope, rtype: str, rid: str) -> Response:
    return _fhir(read_resource(runtime, scope, rtype, rid))


def patient_everything(
    runtime: Runtime, request: Request, scope: Scope, patient_id: str
) -> Response:
    params = dict(request.query_params)
    count = params.get("_count", str(DEFAULT_COUNT))
    if not count.isdigit() or not 1 <= int(count) <= MAX_COUNT:
        raise SearchError(f"_count must be an integer from 1 to {MAX_COUNT}")
    types = [t for t in params.get("_type", "").split(",") if t] or None
    since = None
    if "_since" in params:
        try:
            lo, hi = date_range(params["_since"])
        except (ValueError, OverflowError) as exc:
            raise SearchError("_since is not a FHIR instant") from exc
        since = DateClause("gt", lo, hi)
    after = params.get("_cursor")
    if after is not None and not after.isdigit():
        raise SearchError("invalid _cursor")
    page = everything(
        runtime,
        scope,
        patient_id,
        types=types,
        since=since,
        count=int(count),
        after=int(after) if after else None,
    )
    base = _base(runtime, scope.member_id if request.path_params.get("member_id") else None)
    keep = [(k, v) for k, v in request.query_params.multi_items() if k != "_cursor"]
    url = f"{base}/Patient/{patient_id}/$everything"
    self_url = f"{url}?{urlencode(keep)}" if keep else url
    next_url = None
    if page.next_after is not None:
        next_url = f"{url}?{urlencode([*keep, ('_cursor', str(page.next_after))])}"
    return _bundle(base, self_url, page, next_url)


# ---------------------------------------------------------------------------- bulk export
def kick_off(runtime: Runtime, request: Request, scope: Scope, prefer: str | None) -> Response:
    if "respond-async" not in (prefer or ""):
        raise SearchError("a Bulk Data kick-off needs the header Prefer: respond-async")
    pairs = list(request.query_params.multi_items())
    wanted = exports.parse_kickoff(pairs, strict=_strict(prefer))
    query = f"?{request.url.query}" if request.url.query else ""
    asked = f"{runtime.settings.public_base_url}{request.url.path}{query}"  # as the client saw it
    export_id = exports.kick_off(runtime, scope, wanted, asked)
    location = f"{runtime.settings.public_base_url}/v1/fhir/bulkstatus/{export_id}"
    return Response(status_code=status.HTTP_202_ACCEPTED, headers={"Content-Location": location})


# ---------------------------------------------------------------------------- both bases
@tenant_wide.get(
    "/metadata", summary="The CapabilityStatement", response_class=Response, responses=RESOURCE
)
def get_metadata(runtime: RuntimeDep) -> Response:
    return metadata(runtime, None)


@one_member.get(
    "/metadata", summary="The CapabilityStatement", response_class=Response, responses=RESOURCE
)
def get_member_metadata(member_id: MemberId, runtime: RuntimeDep) -> Response:
    return metadata(runtime, member_id)


EXPORT_HELP = (
    "Bulk Data kick-off: `Prefer: respond-async` is required; `_type`, `_since` and "
    "`_outputFormat=application/fhir+ndjson`. Answers 202 with `Content-Location`: poll it."
)
KICKOFF: Responses = {
    202: {"description": "Accepted: poll the Content-Location"},
    **fhir_errors(400, 429),
}


@tenant_wide.get(
    "/$export",
    summary="Export the caller's data (Bulk Data)",
    description=EXPORT_HELP,
    response_class=Response,
    status_code=202,
    responses=KICKOFF,
)
@tenant_wide.get(
    "/Patient/$export",
    summary="Export every patient's data (Bulk Data)",
    description=EXPORT_HELP,
    response_class=Response,
    status_code=202,
    responses=KICKOFF,
)
def export_all(
    request: Request, caller: AnyCaller, runtime: RuntimeDep, prefer: Prefer = None
) -> Response:
    return kick_off(runtime, request, scope_of(runtime, caller), prefer)


@one_member.get(
    "/$export",
    summary="Export one member's data (Bulk Data)",
    description=EXPORT_HELP,
    response_class=Response,
    status_code=202,
    responses=KICKOFF,
)
@one_member.get(
    "/Patient/$export",
    summary="Export one member's data (Bulk Data)",
    description=EXPORT_HELP,
    response_class=Response,
    status_code=202,
    responses=KICKOFF,
)
def export_member(
    request: Request,
    member_id: MemberId,
    caller: AnyCaller,
    runtime: RuntimeDep,
    prefer: Prefer = None,
) -> Response:
    return kick_off(runtime, request, scope_of(runtime, caller, member_id), prefer)


STATUS: Responses = {
    200: {"description": "Complete: the manifest", "content": {"application/json": {"schema": {}}}},
    202: {"description": "In progress (X-Progress, Retry-After)"},
    **fhir_errors(500),
}


@tenant_wide.get(
    "/bulkstatus/{export_id}",
    summary="An export's status or manifest",
    response_class=Response,
    responses=STATUS,
)
def export_status(
    export_id: Annotated[str, Path(max_length=40)], caller: AnyCaller, runtime: RuntimeDep
) -> Response:
    view = exports.export_status(runtime, scope_of(runtime, caller), export_id)
    if view.status in exports.ACTIVE:
        done = sum(view.progress.values())
        progress = f"{len(view.progress)}/{len(view.types)} types, {done} resources"
        return Response(
            status_code=202,
            headers={"X-Progress": progress, "Retry-After": str(exports.RETRY_AFTER)},
        )
    if view.status == "failed":
        raise exports.ExportFailed(view.error or "the export failed", code="EXPORT_FAILED")
    manifest = {
        "transactionTime": view.transaction_time,
        "request": view.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": item["type"], "url": item["url"], "count": item["count"]}
            for item in view.output
        ],
        "error": [],
    }
    expires = view.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return Response(
        json.dumps(manifest), media_type="application/json", headers={"Expires": expires}
    )


@tenant_wide.delete(
    "/bulkstatus/{export_id}",
    summary="Cancel an export, or delete it and its files",
    response_class=Response,
    status_code=202,
    responses={202: {"description": "Cancelled"}},
)
def cancel_export(
    export_id: Annotated[str, Path(max_length=40)], caller: AnyCaller, runtime: RuntimeDep
) -> Response:
    exports.cancel(runtime, scope_of(runtime, caller), export_id)
    return Response(status_code=202)


@tenant_wide.get(
    "/bulkfiles/{export_id}/{name}",
    summary="One NDJSON file of a completed export",
    response_class=StreamingResponse,
    responses={
        200: {"description": "NDJSON", "content": {exports.NDJSON: {"schema": {}}}},
        **fhir_errors(409),
    },
)
def export_file(
    export_id: Annotated[str, Path(max_length=40)],
    name: Annotated[str, Path(pattern=r"^[A-Za-z]{1,64}-\d{1,6}\.ndjson$")],
    caller: AnyCaller,
    runtime: RuntimeDep,
) -> StreamingResponse:
    chunks: Iterator[bytes] = exports.open_file(runtime, scope_of(runtime, caller), export_id, name)
    return StreamingResponse(chunks, media_type=exports.NDJSON)


# Search and read come after the fixed paths above (their ``{type}`` would match them).
SEARCH_HELP = (
    "FHIR search. `_count`, `_lastUpdated` (gt ge lt le eq ne sa eb; repeatable), `_id`, "
    "`patient`, `connectionId`/`_source`, `_summary=count`, `_total`, and per type: "
    "Observation `code` `category` `date`; Condition `code` `category` "
    "`clinical-status`; AllergyIntolerance `clinical-status`; MedicationRequest `status`. "
    "See the CapabilityStatement (`metadata`)."
)


@tenant_wide.get(
    "/Patient/{patient_id}/$everything",
    summary="Everything stored for one patient",
    response_class=Response,
    responses={**BUNDLE, **fhir_errors(400)},
)
def get_everything(
    request: Request, patient_id: ResourceId, caller: AnyCaller, runtime: RuntimeDep
) -> Response:
    return patient_everything(runtime, request, scope_of(runtime, caller), patient_id)


@one_member.get(
    "/Patient/{patient_id}/$everything",
    summary="Everything stored for one patient",
    response_class=Response,
    responses={**BUNDLE, **fhir_errors(400)},
)
def get_member_everything(
    request: Request,
    member_id: MemberId,
    patient_id: ResourceId,
    caller: AnyCaller,
    runtime: RuntimeDep,
) -> Response:
    scope = scope_of(runtime, caller, member_id)
    return patient_everything(runtime, request, scope, patient_id)


@tenant_wide.get(
    "/{resource_type}",
    summary="Search stored resources of one type",
    description=SEARCH_HELP,
    response_class=Response,
    responses={**BUNDLE, **fhir_errors(400)},
)
def search_type(
    request: Request,
    resource_type: ResourceType,
    caller: AnyCaller,
    runtime: RuntimeDep,
    prefer: Prefer = None,
) -> Response:
    return search(runtime, request, scope_of(runtime, caller), resource_type, prefer)


@one_member.get(
    "/{resource_type}",
    summary="Search one member's stored resources of one type",
    description=SEARCH_HELP,
    response_class=Response,
    responses={**BUNDLE, **fhir_errors(400)},
)
def search_member_type(
    request: Request,
    member_id: MemberId,
    resource_type: ResourceType,
    caller: AnyCaller,
    runtime: RuntimeDep,
    prefer: Prefer = None,
) -> Response:
    scope = scope_of(runtime, caller, member_id)
    return search(runtime, request, scope, resource_type, prefer)


@tenant_wide.get(
    "/{resource_type}/{resource_id}",
    summary="Read one stored resource",
    response_class=Response,
    responses=RESOURCE,
)
def read_one(
    request: Request,
    resource_type: ResourceType,
    resource_id: ResourceId,
    caller: AnyCaller,
    runtime: RuntimeDep,
) -> Response:
    return read(runtime, scope_of(runtime, caller), resource_type, resource_id)


@one_member.get(
    "/{resource_type}/{resource_id}",
    summary="Read one of a member's stored resources",
    response_class=Response,
    responses=RESOURCE,
)
def read_member_one(
    request: Request,
    member_id: MemberId,
    resource_type: ResourceType,
    resource_id: ResourceId,
    caller: AnyCaller,
    runtime: RuntimeDep,
) -> Response:
    scope = scope_of(runtime, caller, member_id)
    return read(runtime, scope, resource_type, resource_id)


routers = (tenant_wide, one_member)
