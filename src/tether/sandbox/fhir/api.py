"""FHIR R4 REST routes of a sandbox source: ``metadata``, search-type and read.

Faults from the source's knobs are applied before authentication (a throttling proxy
answers before the app looks at the token), then the bearer token is checked (401 with
``WWW-Authenticate: Bearer``), then ``forbidden_types`` (403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tether.sandbox.controller import Sandbox
from tether.sandbox.faults import delay, status_fault
from tether.sandbox.fhir.access import Access, basic_access, bearer_access
from tether.sandbox.fhir.conformance import RESOURCE_TYPES, capability_statement
from tether.sandbox.fhir.outcomes import fhir_response, operation_outcome, unauthorized
from tether.sandbox.fhir.search import (
    SearchError,
    has_category,
    page_url,
    parse_query,
    searchset,
)
from tether.sandbox.urls import source_urls

Handler = Callable[[Request], Awaitable[Response]]

NOT_A_BUNDLE = b'{"resourceType":"Parameters","parameter":[]}'
BROKEN_JSON = b'{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceTy'


def _media_type(request: Request) -> str:
    """The first media type of the request's Accept, without its parameters."""
    first = request.headers.get("accept", "").split(",", 1)[0]
    return first.split(";", 1)[0].strip().lower()


def fhir_routes(sandbox: Sandbox) -> list[Route]:
    """Routes relative to the sandbox mount."""

    async def guard(request: Request, rtype: str | None) -> Access | Response:
        source = request.path_params["source"]
        knobs = sandbox.knobs(source)
        counters = sandbox.counters(source)
        await delay(knobs)
        fault = status_fault(knobs, sandbox.dice(source), counters)
        if fault is not None:
            return fault
        if rtype is None:
            return Access(patient="", scope="")
        config = sandbox.source(source)
        access: Access | str | None = basic_access(
            request, config.basic_password, {p.id for p in sandbox.patients(source)}
        )
        if access is None:
            access = bearer_access(request, sandbox.store, source)
        if isinstance(access, str):
            return unauthorized(access)
        if rtype not in RESOURCE_TYPES:
            return operation_outcome(404, "not-supported", f"{rtype} is not served")
        if config.accept_only and _media_type(request) != config.accept_only:
            return operation_outcome(
                406, "not-supported", f"this server answers only {config.accept_only}"
            )
        if rtype in knobs.forbidden_types or not access.may_read(rtype):
            return operation_outcome(403, "forbidden", f"no access to {rtype}")
        return access

    async def metadata(request: Request) -> Response:
        source = request.path_params["source"]
        sandbox.source(source)
        guarded = await guard(request, None)
        if isinstance(guarded, Response):
            return guarded
        urls = source_urls(sandbox, request, source)
        return fhir_response(capability_statement(urls.issuer, sandbox.source(source).name))

    async def search(request: Request) -> Response:
        source, rtype = request.path_params["source"], request.path_params["rtype"]
        access = await guard(request, rtype)
        if isinstance(access, Response):
            return access
        try:
            query = parse_query(request.query_params.multi_items(), rtype)
        except SearchError as exc:
            return operation_outcome(400, "invalid", str(exc))
        if query.patient is not None and query.patient != access.patient:
            return operation_outcome(403, "forbidden", "the token is for another patient")
        config = sandbox.source(source)
        if config.reject_last_updated and query.last_updated:
            return operation_outcome(400, "not-supported", "_lastUpdated is not supported")
        if config.observation_category_required and rtype == "Observation" and not query.category:
            return operation_outcome(400, "required", "an Observation search must name a category")
        knobs = sandbox.knobs(source)
        if knobs.malformed_page == query.page_number:
            return fhir_response(BROKEN_JSON if knobs.malformed_kind == "json" else NOT_A_BUNDLE)
        record = sandbox.catalog.record(source, access.patient)
        total = record.count(rtype, query.window)
        if query.ids is not None:  # the resources the patient's record holds by these ids
            if knobs.refuse_id_search:
                return operation_outcome(400, "not-supported", "_id is not supported here")
            found = [(rid, record.read(rtype, rid)) for rid in query.ids]
            matching = [(rid, body) for rid, body in found if body is not None]
            total = len(matching)
            entries = matching[query.offset : query.offset + query.count]
        elif query.category is not None:  # filtered whole, then paged: small records only
            every = record.page(rtype, query.window, 0, total)
            matching = [e for e in every if has_category(e[1], query.category)]
            total = len(matching)
            entries = matching[query.offset : query.offset + query.count]
        else:
            entries = record.page(rtype, query.window, query.offset, query.count)
        following = query.offset + len(entries)
        if knobs.endless_next:
            following = query.offset + query.count
        elif following >= total:
            following = -1
        urls = source_urls(sandbox, request, source)
        type_url = f"{urls.fhir_base}/{rtype}"
        body = searchset(
            type_url=type_url,
            fhir_base=urls.fhir_base,
            rtype=rtype,
            entries=entries,
            total=None if knobs.endless_next else total,
            self_url=page_url(type_url, query, query.offset),
            next_url=page_url(type_url, query, following) if following >= 0 else None,
        )
        return fhir_response(body)

    async def read(request: Request) -> Response:
        source, rtype = request.path_params["source"], request.path_params["rtype"]
        access = await guard(request, rtype)
        if isinstance(access, Response):
            return access
        body = sandbox.catalog.record(source, access.patient).read(
            rtype, request.path_params["rid"]
        )
        if body is None:
            return operation_outcome(404, "not-found", f"{rtype}/{request.path_params['rid']}")
        return fhir_response(body)

    def counted(handler: Handler) -> Handler:
        """Count the request, and how many are answered at once, from arrival to answer."""

        async def endpoint(request: Request) -> Response:
            counters = sandbox.counters(request.path_params["source"])
            counters.fhir_started()
            try:
                return await handler(request)
            finally:
                counters.fhir_finished()

        return endpoint

    return [
        Route("/{source}/fhir/metadata", counted(metadata), methods=["GET"]),
        Route("/{source}/fhir/{rtype}", counted(search), methods=["GET"]),
        Route("/{source}/fhir/{rtype}/{rid}", counted(read), methods=["GET"]),
    ]
