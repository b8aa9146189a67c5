"""The member page at ``/app``: a thin adapter that reads the session, calls one service
function and renders HTML (a whole page, or with htmx a fragment).

Every form works without JavaScript (POST, then a redirect back to ``/app``); with it, htmx
posts the same forms and swaps the connections list in place, and ``app.js`` opens the
source's sign-in in a popup. See docs/web.md for the design.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from tether.accounts.tenants import tenant as tenant_view
from tether.connections import establish
from tether.connections.deletion import delete_connection
from tether.connections.disconnect import disconnect as disconnect_connection
from tether.connections.views import member_connections
from tether.data import exports
from tether.data.fhir import Scope
from tether.directory import service as directory
from tether.domain import SourceType
from tether.errors import Forbidden, ProblemError
from tether.http.deps import RuntimeDep
from tether.http.origins import origin_of
from tether.identity.app_links import redeem_app_link
from tether.identity.credentials import authenticate_member
from tether.identity.page_sessions import PageSession, display_of, new_session
from tether.identity.principals import MemberPrincipal
from tether.runtime import Runtime
from tether.sync.history import member_recent_runs
from tether.sync.scheduling import request_sync
from tether.web import render as web
from tether.web.cookies import check_csrf, from_own_page, own_origin, read_session, set_cookie
from tether.web.presenters import (
    SHOWN_SYNCS,
    TYPE_LABELS,
    ConnectionCard,
    Notice,
    SourceView,
    action_notice,
    outcome_notice,
    problem_notice,
    source_views,
)

router = APIRouter(prefix="/app", include_in_schema=False)
SEARCH_LIMIT = 20
CsrfField = Annotated[str | None, Form(max_length=200)]


class MemberOperation(Protocol):
    """A use case on one of the member's connections (disconnect, delete, sync now)."""

    def __call__(
        self, runtime: Runtime, /, *, member: MemberPrincipal, connection_id: str
    ) -> object: ...


_TARGET = re.compile(r"^[a-z][a-z0-9\-]{0,40}$")


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


@cache
def _static_bytes(name: str) -> bytes:
    return (web.HERE / "static" / name).read_bytes()


@router.get("/static/{name}")
def static(name: str, v: str | None = None) -> Response:
    media_type = web.STATIC.get(name)
    if media_type is None:
        return Response(status_code=404)
    cache_control = "public, max-age=31536000, immutable" if v else "no-cache"
    return Response(
        _static_bytes(name),
        media_type=media_type,
        headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"},
    )


def _message(title: str, text: str, *, status_code: int, ancestors: str = "'self'") -> Response:
    return web.render_page(
        "message.html", status_code=status_code, ancestors=ancestors, title=title, text=text
    )


def _cannot_enter(exc: ProblemError) -> Response:
    detail = exc.detail.rstrip(".")
    return _message(
        "This link cannot be used",
        f"{detail[:1].upper()}{detail[1:]}. Go back to the app and open your connections again.",
        status_code=exc.status,
    )


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/enter")
def enter_page() -> Response:
    """The app link lands here; its script POSTs the fragment's token (never sent in a URL)."""
    return web.render_page("enter.html", page="enter", title="Opening your connections")


@router.post("/enter")
def enter(
    request: Request, runtime: RuntimeDep, token: Annotated[str, Form(max_length=2000)]
) -> Response:
    if not from_own_page(runtime, request):
        return _cannot_enter(Forbidden("this link was submitted from another site"))
    try:
        session = redeem_app_link(runtime, token)
    except ProblemError as exc:
        return _cannot_enter(exc)
    response = RedirectResponse("/app", status_code=303)
    set_cookie(runtime, response, session)
    return _no_store(response)


@router.post("/session")
def start_session(
    request: Request,
    runtime: RuntimeDep,
    token: Annotated[str, Form(max_length=4000)],
    display: Annotated[str, Form(max_length=20)] = "popup",
) -> Response:
    """For apps that embed the page: POST a member token (never put it in a URL)."""
    try:
        member = authenticate_member(runtime, token)
        tenant = tenant_view(runtime, tenant_id=member.tenant_id)
        return_urls = tenant.return_urls
        # Against login CSRF: only tether itself or the tenant's own site may post here.
        origin = request.headers.get("origin")
        allowed = {
            own_origin(runtime),
            *tenant.allowed_origins,
            *(origin_of(u) for u in return_urls),
        }
        if origin is not None and origin not in allowed:
            raise Forbidden("this page can only be opened from the app's own site")
    except ProblemError as exc:
        return _cannot_enter(exc)
    session = new_session(runtime, member, display_of(display))
    # A page, not a redirect: the navigation to /app then starts on tether's own page, so
    # the SameSite=Strict cookie goes with it even when the app posted from another site.
    response = web.render_page(
        "entered.html",
        page="entered",
        title="Opening your connections",
        ancestors=web.frame_ancestors(return_urls),
    )
    set_cookie(runtime, response, session)
    return response


def _connections(runtime: Runtime, session: PageSession) -> list[ConnectionCard]:
    now = runtime.clock()
    views = member_connections(runtime, member=session.principal)
    runs = member_recent_runs(runtime, member=session.principal, limit=SHOWN_SYNCS)
    days = runtime.settings.expiring_notice_days
    return [ConnectionCard.of(view, now, runs.get(view.id, ()), notice_days=days) for view in views]


def _source_type(value: str | None) -> SourceType | None:
    return SourceType(value) if value and value in SourceType.__members__ else None


def _name_of(connections: list[ConnectionCard], connection_id: str | None) -> str | None:
    return next((c.name for c in connections if c.id == connection_id), None)


def _signed_out(request: Request, exc: ProblemError) -> Response:
    text = "Your session has ended. Go back to the app and open your connections again."
    if _htmx(request):
        target = request.headers.get("hx-target") or ""
        return web.render_page(
            "_signed_out.html",
            status_code=exc.status,
            target=target if _TARGET.match(target) else "connections",
            text=text,
        )
    return _message("Please open this page from your app", text, status_code=exc.status)


def _connections_fragment(
    runtime: Runtime, session: PageSession, notice: Notice | None, status_code: int = 200
) -> Response:
    return web.render_page(
        "_connections_response.html",
        status_code=status_code,
        ancestors=web.frame_ancestors(session.return_urls),
        connections=_connections(runtime, session),
        notice=notice,
        csrf=session.csrf,
    )


@router.get("")
def page(
    request: Request,
    runtime: RuntimeDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[str | None, Query(max_length=20)] = None,
    status_code: Annotated[str | None, Query(max_length=60)] = None,
    connection_id: Annotated[str | None, Query(alias="connectionId", max_length=100)] = None,
    notice: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    try:
        session = read_session(runtime, request)
    except ProblemError as exc:
        return _signed_out(request, exc)
    connections = _connections(runtime, session)
    name = _name_of(connections, connection_id)
    shown = outcome_notice(status_code, name) or action_notice(notice, name)
    results, search_error = _search(runtime, q, type, connections)
    return web.render_page(
        "app.html",
        ancestors=web.frame_ancestors(session.return_urls),
        page="app",
        title="Your health data connections",
        session=session,
        csrf=session.csrf,
        connections=connections,
        notice=shown,
        q=q or "",
        type=type or "",
        types=TYPE_LABELS,
        results=results,
        search_error=search_error,
        records=_records(runtime, session),
        records_notice=None,
    )


def _search(
    runtime: Runtime, q: str | None, type: str | None, connections: list[ConnectionCard]
) -> tuple[list[SourceView] | None, Notice | None]:
    if not (q or "").strip() and _source_type(type) is None:
        return None, None
    try:
        found = directory.search(
            runtime, query=q, source_type=_source_type(type), limit=SEARCH_LIMIT
        )
    except ProblemError as exc:
        return None, problem_notice(exc)
    return source_views(found, connections), None


@router.get("/connections")
def connections_fragment(
    request: Request,
    runtime: RuntimeDep,
    status_code: Annotated[str | None, Query(max_length=60)] = None,
    connection_id: Annotated[str | None, Query(alias="connectionId", max_length=100)] = None,
) -> Response:
    """The connections list alone: polled while anything is busy, refreshed after a sign-in."""
    try:
        session = read_session(runtime, request)
    except ProblemError as exc:
        return _signed_out(request, exc)
    name = None
    if status_code:
        name = _name_of(_connections(runtime, session), connection_id)
    return _connections_fragment(runtime, session, outcome_notice(status_code, name))


@router.get("/sources")
def sources_fragment(
    request: Request,
    runtime: RuntimeDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Search results alone (htmx); without htmx, the whole page with the results."""
    if not _htmx(request):
        query = urlencode({k: v for k, v in (("q", q), ("type", type)) if v})
        return RedirectResponse(f"/app?{query}" if query else "/app", status_code=303)
    try:
        session = read_session(runtime, request)
    except ProblemError as exc:
        return _signed_out(request, exc)
    connections = _connections(runtime, session)
    results, error = _search(runtime, q, type, connections)
    return web.render_page(
        "_results.html",
        status_code=400 if error else 200,
        ancestors=web.frame_ancestors(session.return_urls),
        results=results,
        search_error=error,
        csrf=session.csrf,
        q=q or "",
    )


def _act(
    request: Request,
    runtime: RuntimeDep,
    connection_id: str,
    csrf: str | None,
    kind: str,
    operation: MemberOperation,
) -> Response:
    """Check the session and CSRF token, run ``operation`` for the session's member on this
    connection, answer the list (htmx) or a redirect back to the page."""
    try:
        session = read_session(runtime, request)
    except ProblemError as exc:
        return _signed_out(request, exc)
    try:
        check_csrf(runtime, request, session, csrf)
        operation(runtime, member=session.principal, connection_id=connection_id)
    except ProblemError as exc:
        if _htmx(request):
            return _connections_fragment(runtime, session, problem_notice(exc), exc.status)
        notice = problem_notice(exc)
        return _message(notice.title or "Something went wrong", notice.text, status_code=exc.status)
    if _htmx(request):
        name = _name_of(_connections(runtime, session), connection_id)
        return _connections_fragment(runtime, session, action_notice(kind, name))
    query = urlencode({"notice": kind, "connectionId": connection_id})
    return RedirectResponse(f"/app?{query}", status_code=303)


@router.post("/connections/{connection_id}/disconnect")
def disconnect(
    connection_id: str, request: Request, runtime: RuntimeDep, csrf: CsrfField = None
) -> Response:
    return _act(request, runtime, connection_id, csrf, "disconnected", disconnect_connection)


@router.post("/connections/{connection_id}/delete")
def delete(
    connection_id: str, request: Request, runtime: RuntimeDep, csrf: CsrfField = None
) -> Response:
    return _act(request, runtime, connection_id, csrf, "deleted", delete_connection)


@router.post("/connections/{connection_id}/sync")
def sync_now(
    connection_id: str, request: Request, runtime: RuntimeDep, csrf: CsrfField = None
) -> Response:
    return _act(request, runtime, connection_id, csrf, "sync", request_sync)


@router.post("/connections/{connection_id}/connect")
def connect(
    connection_id: str,
    request: Request,
    runtime: RuntimeDep,
    csrf: CsrfField = None,
    display: Annotated[str, Form(max_length=20)] = "redirect",
) -> Response:
    """getOauthUrl for this member. ``app.js`` asks for JSON and opens the link in a popup (or
    this window); without JavaScript the answer is a page with a link to continue."""
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        session = read_session(runtime, request)
    except ProblemError as exc:
        return _problem_json(exc) if wants_json else _signed_out(request, exc)
    try:
        check_csrf(runtime, request, session, csrf)
        url = _oauth_url(runtime, session, connection_id, display)
    except ProblemError as exc:
        if wants_json:
            return _problem_json(exc)
        notice = problem_notice(exc)
        return _message(notice.title or "Something went wrong", notice.text, status_code=exc.status)
    if wants_json:
        return _no_store(JSONResponse({"redirectUrl": url}))
    name = _name_of(_connections(runtime, session), connection_id)
    return web.render_page(
        "continue.html",
        ancestors=web.frame_ancestors(session.return_urls),
        title="Continue to sign in",
        url=url,
        name=name or "the data source",
    )


# ---------------------------------------------------------------------------- records
def _records(runtime: Runtime, session: PageSession) -> exports.ExportView | None:
    return exports.latest_export(runtime, Scope(session.tenant_id, session.member_id))


def _records_fragment(
    runtime: Runtime, session: PageSession, notice: Notice | None = None, status_code: int = 200
) -> Response:
    return web.render_page(
        "_records.html",
        status_code=status_code,
        ancestors=web.frame_ancestors(session.return_urls),
        records=_records(runtime, session),
        records_notice=notice,
        csrf=session.csrf,
    )


@router.get("/records")
def records_fragment(request: Request, runtime: RuntimeDep) -> Response:
    """The "your records" panel alone: polled while a download is being prepared."""
    try:
        session = read_session(runtime, request)
    except ProblemError as exc:
        return _signed_out(request, exc)
    return _records_fragment(runtime, session)


@router.post("/records/export")
def export_records(request: Request, runtime: RuntimeDep, csrf: CsrfField = None) -> Response:
    """Start preparing the member's own copy: every record, as a Bulk Data export."""
    try:
        session = read_session(runtime, request)
    except ProblemError as exc:
        return _signed_out(request, exc)
    try:
        check_csrf(runtime, request, session, csrf)
        scope = Scope(session.tenant_id, session.member_id)
        wanted = exports.parse_kickoff([], strict=False)
        exports.kick_off(runtime, scope, wanted, f"{runtime.settings.public_base_url}/app")
    except ProblemError as exc:
        if _htmx(request):
            return _records_fragment(runtime, session, problem_notice(exc), exc.status)
        notice = problem_notice(exc)
        return _message(notice.title or "Something went wrong", notice.text, status_code=exc.status)
    if _htmx(request):
        return _records_fragment(runtime, session)
    return RedirectResponse("/app#records-title", status_code=303)


@router.get("/records/{export_id}/download")
def download_records(export_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """The member's records as one ZIP of NDJSON files (one per record type)."""
    try:
        session = read_session(runtime, request)
    except ProblemError as exc:
        return _signed_out(request, exc)
    scope = Scope(session.tenant_id, session.member_id)
    try:
        chunks = exports.archive(runtime, scope, export_id)
    except ProblemError as exc:
        notice = problem_notice(exc)
        return _message(notice.title or "Not available", notice.text, status_code=exc.status)
    name = f"health-records-{export_id}.zip"
    return _no_store(
        StreamingResponse(
            chunks,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    )


def _oauth_url(runtime: Runtime, session: PageSession, connection_id: str, display: str) -> str:
    """In a popup tether's completion page reports back to this page; in this window the
    member comes back to this page (``/app``)."""
    back = None if display_of(display) == "popup" else f"{runtime.settings.public_base_url}/app"
    return establish.get_oauth_url(
        runtime, member=session.principal, connection_id=connection_id, trusted_return_url=back
    )


def _problem_json(exc: ProblemError) -> Response:
    notice = problem_notice(exc)
    body = {"title": exc.title, "detail": notice.text, "status": exc.status, "code": exc.code}
    return _no_store(
        JSONResponse(body, status_code=exc.status, media_type="application/problem+json")
    )
