"""The operator console at ``/console``: a tenant's staff, signed in with the tenant's API key,
see connections across members, one member's connections and audit trail, the health of the
data sources and the job queue, and can sync now, disconnect or delete a member's connection.

Server-rendered like the member page (same Jinja environment, CSP and headers; no JavaScript
needed): every form POSTs and redirects back. Every action goes through the same service
function as the API, for a principal that acts for the member and is audited as the console.
The session is a signed cookie (``HttpOnly``, ``SameSite=Strict``, path ``/console``), and
every state change carries its CSRF secret and must come from tether's own page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from tether.accounts import members
from tether.audit import audit_events
from tether.connections import fleet, source_health
from tether.connections.deletion import delete_connection
from tether.connections.disconnect import disconnect as disconnect_connection
from tether.connections.views import member_connections, tenant_connections
from tether.domain import Status, SyncStatus
from tether.errors import AuthenticationRequired, Forbidden, InvalidRequest, ProblemError
from tether.http.deps import RuntimeDep
from tether.identity import console_sessions
from tether.identity.console_sessions import ConsoleSession
from tether.identity.delegation import act_for_member
from tether.identity.principals import MemberPrincipal
from tether.runtime import Runtime
from tether.sync.history import member_recent_runs
from tether.sync.scheduling import request_sync
from tether.web import render as web
from tether.web.cookies import from_own_page
from tether.web.presenters import SHOWN_SYNCS, ConnectionCard
from tether.webhooks import endpoints as webhook_endpoints

router = APIRouter(prefix="/console", include_in_schema=False)
CsrfField = Annotated[str | None, Form(max_length=200)]
PAGE_SIZE = 50
ACTIONS = {"sync": "Sync requested", "disconnect": "Disconnected", "delete": "Deletion started"}


class MemberOperation(Protocol):
    def __call__(
        self, runtime: Runtime, /, *, member: MemberPrincipal, connection_id: str
    ) -> object: ...


OPERATIONS: dict[str, MemberOperation] = {
    "sync": request_sync,
    "disconnect": disconnect_connection,
    "delete": delete_connection,
}


def _https(runtime: Runtime) -> bool:
    return runtime.settings.public_base_url.startswith("https://")


def _cookie(runtime: Runtime) -> tuple[str, str]:
    """(name, path): ``__Host-`` with path ``/`` over HTTPS, else scoped to ``/console``."""
    return ("__Host-tether_console", "/") if _https(runtime) else ("tether_console", "/console")


def _session(runtime: Runtime, request: Request) -> ConsoleSession:
    name, _ = _cookie(runtime)
    return console_sessions.open_console(runtime, request.cookies.get(name))


def _signed_in(runtime: Runtime, request: Request) -> ConsoleSession | None:
    """The console session, or None when there is none (the page then asks to sign in)."""
    try:
        return _session(runtime, request)
    except AuthenticationRequired:
        return None


def _page(template: str, *, status_code: int = 200, **context: Any) -> Response:
    # The console is never framed: frame-ancestors 'none'.
    response = web.render(template, status_code=status_code, ancestors="'none'", **context)
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Vary"] = "Cookie"
    return response


def _signin_redirect() -> Response:
    return RedirectResponse("/console/signin", status_code=303)


def _message(title: str, text: str, status_code: int) -> Response:
    return _page("message.html", status_code=status_code, title=title, text=text, page="console")


def _check_csrf(
    runtime: Runtime, request: Request, session: ConsoleSession, sent: str | None
) -> None:
    if not from_own_page(runtime, request):
        raise Forbidden("this request came from another site", code="CROSS_SITE_REQUEST")
    if not session.csrf_matches(sent):
        raise Forbidden(
            "this request could not be verified; reload the page and try again",
            code="CSRF_FAILED",
        )


@router.get("/signin")
def signin_page() -> Response:
    return _page("console_signin.html", title="Operator console: sign in", page="console")


@router.post("/signin")
def signin(
    request: Request, runtime: RuntimeDep, api_key: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    # Against login CSRF: only tether's own sign-in page may post here.
    if not from_own_page(runtime, request):
        return _message("Sign-in refused", "This form was submitted from another site.", 403)
    try:
        session = console_sessions.sign_in(runtime, api_key)
    except ProblemError:
        return _page(
            "console_signin.html",
            status_code=401,
            title="Operator console: sign in",
            page="console",
            error="That is not a valid API key of an enabled tenant.",
        )
    response = RedirectResponse("/console", status_code=303)
    name, path = _cookie(runtime)
    response.set_cookie(
        name,
        console_sessions.seal(runtime, session),
        max_age=console_sessions.CONSOLE_TTL,
        path=path,
        httponly=True,
        secure=_https(runtime),
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/signout")
def signout(request: Request, runtime: RuntimeDep, csrf: CsrfField = None) -> Response:
    response = _signin_redirect()
    try:
        _check_csrf(runtime, request, _session(runtime, request), csrf)
    except ProblemError:
        return response
    name, path = _cookie(runtime)
    response.delete_cookie(
        name, path=path, httponly=True, secure=_https(runtime), samesite="strict"
    )
    return response


@dataclass(frozen=True)
class Filters:
    status: str = ""
    sync_status: str = ""
    sync_error: str = ""
    source: str = ""
    member: str = ""

    def query(self, **extra: object) -> str:
        values = {
            "status": self.status,
            "syncStatus": self.sync_status,
            "syncError": self.sync_error,
            "source": self.source,
            "member": self.member,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _enum(kind: type[Status] | type[SyncStatus], value: str, label: str) -> list:
    if not value:
        return []
    try:
        return [kind(value)]
    except ValueError:
        raise InvalidRequest(
            f"{label}: {value!r} is not one of the values", code="INVALID_FILTER"
        ) from None


@router.get("")
def connections_page(
    request: Request,
    runtime: RuntimeDep,
    status: Annotated[str, Query(max_length=20)] = "",
    sync_status: Annotated[str, Query(alias="syncStatus", max_length=20)] = "",
    sync_error: Annotated[str, Query(alias="syncError", max_length=60)] = "",
    source: Annotated[str, Query(max_length=100)] = "",
    member: Annotated[str, Query(max_length=200)] = "",
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    notice: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    filters = Filters(status, sync_status, sync_error, source, member)
    error = None
    page = None
    try:
        page = tenant_connections(
            runtime,
            tenant=session.principal,
            status=_enum(Status, status, "status"),
            sync_status=_enum(SyncStatus, sync_status, "syncStatus"),
            sync_error=sync_error or None,
            source=source or None,
            external_id=member or None,
            after=after,
            limit=PAGE_SIZE,
        )
    except ProblemError as exc:
        error = exc.detail
    now = runtime.clock()
    rows = [
        (item, ConnectionCard.of(item.connection, now)) for item in (page.items if page else [])
    ]
    return _page(
        "console_connections.html",
        status_code=400 if error else 200,
        title="Connections",
        page="console",
        session=session,
        csrf=session.csrf,
        section="connections",
        filters=filters,
        statuses=[s.value for s in Status],
        sync_statuses=[s.value for s in SyncStatus],
        rows=rows,
        error=error,
        next_query=filters.query(after=page.next_after) if page and page.next_after else None,
        notice=ACTIONS.get(notice),
    )


@router.get("/members/{member_id}")
def member_page(
    member_id: str,
    request: Request,
    runtime: RuntimeDep,
    notice: Annotated[str, Query(max_length=20)] = "",
    connection: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    try:
        acting = act_for_member(runtime, tenant=session.principal, member_id=member_id)
    except ProblemError as exc:
        return _message("No such member", exc.detail, exc.status)
    external_id = members.member(
        runtime, tenant_id=session.tenant_id, member_id=member_id
    ).external_id
    now = runtime.clock()
    runs = member_recent_runs(runtime, member=acting, limit=SHOWN_SYNCS)
    cards = [
        ConnectionCard.of(v, now, runs.get(v.id, ()))
        for v in member_connections(runtime, member=acting)
    ]
    trail = audit_events(runtime, tenant_id=session.tenant_id, member_id=member_id, limit=200)
    return _page(
        "console_member.html",
        title=f"Member {external_id}",
        page="console",
        session=session,
        csrf=session.csrf,
        section="connections",
        member_id=member_id,
        external_id=external_id,
        cards=cards,
        events=list(reversed(trail.items)),
        notice=ACTIONS.get(notice),
        notice_connection=connection,
    )


@router.get("/members/{member_id}/connections/{connection_id}/delete")
def confirm_delete(
    member_id: str, connection_id: str, request: Request, runtime: RuntimeDep
) -> Response:
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    return _page(
        "console_confirm.html",
        title="Delete this connection?",
        page="console",
        session=session,
        csrf=session.csrf,
        section="connections",
        member_id=member_id,
        connection_id=connection_id,
    )


@router.post("/members/{member_id}/connections/{connection_id}/{action}")
def act(
    member_id: str,
    connection_id: str,
    action: str,
    request: Request,
    runtime: RuntimeDep,
    csrf: CsrfField = None,
) -> Response:
    operation = OPERATIONS.get(action)
    if operation is None:
        return _message("Unknown action", f"{action!r} is not an action of the console.", 404)
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    try:
        _check_csrf(runtime, request, session, csrf)
        acting = act_for_member(runtime, tenant=session.principal, member_id=member_id)
        operation(runtime, member=acting, connection_id=connection_id)
    except ProblemError as exc:
        return _message("That did not work", exc.detail, exc.status)
    query = urlencode({"notice": action, "connection": connection_id})
    return RedirectResponse(f"/console/members/{member_id}?{query}", status_code=303)


@router.get("/sources")
def sources_page(request: Request, runtime: RuntimeDep) -> Response:
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    health = source_health.every_source_health(runtime)
    return _page(
        "console_sources.html",
        title="Data sources",
        page="console",
        session=session,
        csrf=session.csrf,
        section="sources",
        health=health,
    )


@router.get("/queue")
def queue_page(request: Request, runtime: RuntimeDep) -> Response:
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    gauges = {g.name: g for g in fleet.gauges(runtime)}

    def single(name: str) -> float | None:
        gauge = gauges.get(name)
        return gauge.samples[0][1] if gauge and gauge.samples else None

    return _page(
        "console_queue.html",
        title="Queue",
        page="console",
        session=session,
        csrf=session.csrf,
        section="queue",
        depth=single("tether_queue_depth"),
        oldest=single("tether_queue_oldest_wait_seconds"),
        backlog=single("tether_sync_backlog_seconds"),
        rows_left=single("tether_delete_rows_left"),
    )


@router.get("/webhooks")
def webhooks_page(
    request: Request, runtime: RuntimeDep, notice: Annotated[str, Query(max_length=20)] = ""
) -> Response:
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    found = webhook_endpoints.list_endpoints(runtime, tenant=session.principal)
    pending = webhook_endpoints.pending_counts(runtime, tenant=session.principal)
    return _page(
        "console_webhooks.html",
        title="Webhooks",
        page="console",
        session=session,
        csrf=session.csrf,
        section="webhooks",
        endpoints=found,
        pending=pending,
        notice=WEBHOOK_NOTICES.get(notice),
    )


@router.get("/webhooks/{endpoint_id}")
def webhook_page(
    endpoint_id: str,
    request: Request,
    runtime: RuntimeDep,
    state: Annotated[str, Query(pattern="^(|pending|delivered|failed)$")] = "",
    notice: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    try:
        endpoint = webhook_endpoints.get_endpoint(
            runtime, tenant=session.principal, endpoint_id=endpoint_id
        )
        page = webhook_endpoints.deliveries(
            runtime,
            tenant=session.principal,
            endpoint_id=endpoint_id,
            state=state or None,
            limit=PAGE_SIZE,
        )
    except ProblemError as exc:
        return _message("No such endpoint", exc.detail, exc.status)
    return _page(
        "console_webhook.html",
        title="Webhook endpoint",
        page="console",
        session=session,
        csrf=session.csrf,
        section="webhooks",
        endpoint=endpoint,
        deliveries=page.items,
        state=state,
        notice=WEBHOOK_NOTICES.get(notice),
    )


WEBHOOK_NOTICES = {"redelivered": "Queued for delivery again", "enabled": "Endpoint enabled"}


def _webhook_action(
    request: Request,
    runtime: RuntimeDep,
    csrf: str | None,
    endpoint_id: str,
    notice: str,
    operation: Callable[[ConsoleSession], object],
) -> Response:
    """A webhook form's POST: signed in, CSRF checked, the service call, back to the page."""
    session = _signed_in(runtime, request)
    if session is None:
        return _signin_redirect()
    try:
        _check_csrf(runtime, request, session, csrf)
        operation(session)
    except ProblemError as exc:
        return _message("That did not work", exc.detail, exc.status)
    return RedirectResponse(f"/console/webhooks/{endpoint_id}?notice={notice}", status_code=303)


@router.post("/webhooks/{endpoint_id}/redeliver/{event_id}")
def redeliver(
    endpoint_id: str,
    event_id: str,
    request: Request,
    runtime: RuntimeDep,
    csrf: CsrfField = None,
) -> Response:
    return _webhook_action(
        request,
        runtime,
        csrf,
        endpoint_id,
        "redelivered",
        lambda session: webhook_endpoints.redeliver_to(
            runtime, tenant=session.principal, endpoint_id=endpoint_id, event_id=event_id
        ),
    )


@router.post("/webhooks/{endpoint_id}/enable")
def enable(
    endpoint_id: str, request: Request, runtime: RuntimeDep, csrf: CsrfField = None
) -> Response:
    return _webhook_action(
        request,
        runtime,
        csrf,
        endpoint_id,
        "enabled",
        lambda session: webhook_endpoints.update_endpoint(
            runtime, tenant=session.principal, endpoint_id=endpoint_id, disabled=False
        ),
    )
