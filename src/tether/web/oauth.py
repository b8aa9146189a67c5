"""The browser side of the OAuth flow: ``/oauth/launch/{token}`` and ``/oauth/callback``.

These answer HTML (a browser is on the other end), never problem+json. Neither logs the query
string; codes, state and the launch token appear nowhere but in the browser's address bar.

After the callback the browser goes to the attempt's return URL (``status_code`` and
``connectionId`` in its query), or, without one, gets the completion page. That page tells the
result three ways (docs/web.md, docs/native.md): ``postMessage`` of ``{statusCode,
connectionId}`` to ``window.opener`` (only to :func:`message_targets`) when there is one; its
own URL's fragment, ``#status_code=…&connectionId=…`` (set with ``history.replaceState``); and
``<meta name="tether:status-code">`` / ``<meta name="tether:connection-id">``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Query
from fastapi.responses import HTMLResponse
from starlette.responses import RedirectResponse, Response

from tether.accounts import tenants
from tether.connections import establish
from tether.errors import ProblemError
from tether.http.deps import RuntimeDep
from tether.http.openapi import html_pages, problems
from tether.http.origins import origin_of
from tether.runtime import Runtime
from tether.web.cookies import own_origin
from tether.web.render import render

router = APIRouter(prefix="/oauth", tags=["oauth"], include_in_schema=True)
COOKIE = "tether_oauth"
ANCESTORS = "'none'"  # never framed: the sign-in pages are clickjacking targets

MESSAGES = {
    "success": "Your account is connected. Your records will start arriving shortly.",
    "access_denied": "You did not allow access, so nothing was connected.",
    "source_unavailable": "The data source could not be reached. Please try again later.",
    "invalid_token_response": "The data source answered in a way tether cannot use.",
    "invalid_client": "The data source did not accept tether's credentials. "
    "The service operator has been told; please try again later.",
    "conflict": "This connection is being deleted. Try again once deletion has finished.",
}


def message_targets(runtime: Runtime, tenant_id: str) -> list[str]:
    """The origins the completion page may post its result to: tether's own (the member
    page's popup), the tenant's allowed browser origins and the origins of its web return
    URLs. Never ``*``: an opener of any other origin is not told."""
    view = tenants.tenant(runtime, tenant_id=tenant_id)
    web_urls = (u for u in view.return_urls if u.startswith(("https://", "http://")))
    found = {own_origin(runtime), *view.allowed_origins, *(origin_of(u) for u in web_urls)}
    return sorted(found)


@router.get(
    "/launch/{token}",
    summary="Start the OAuth flow (the redirectUrl of getOauthUrl)",
    response_class=HTMLResponse,
    responses=html_pages(302, 401, 403, 410, 502),
    status_code=302,
)
def launch(token: str, runtime: RuntimeDep) -> Response:
    try:
        started = establish.launch(runtime, token=token)
    except ProblemError as exc:
        unavailable = exc.code in ("SOURCE_UNAVAILABLE", "SOURCE_INCOMPATIBLE")
        return render(
            "oauth_result.html",
            ancestors=ANCESTORS,
            status_code=exc.status,
            ok=False,
            title="The data source is unavailable" if unavailable else "This link cannot be used",
            message=exc.detail
            + (". " if unavailable else ". Go back to the app and start connecting again."),
            payload=None,
        )
    response = RedirectResponse(started.authorize_url, status_code=302)
    response.set_cookie(
        COOKIE,
        started.browser_cookie,
        max_age=runtime.settings.launch_ttl,
        path="/oauth",
        httponly=True,
        secure=runtime.settings.public_base_url.startswith("https://"),
        samesite="lax",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get(
    "/callback",
    summary="Where the data source sends the member back",
    response_class=HTMLResponse,
    responses={**html_pages(200, 302, 400, 401, 403, 410), **problems(422)},
)
def callback(
    runtime: RuntimeDep,
    state: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=4000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    browser: Annotated[str | None, Cookie(alias=COOKIE)] = None,
) -> Response:
    try:
        outcome = establish.complete(
            runtime, state=state, code=code, error=error, browser_cookie=browser
        )
    except ProblemError as exc:
        return render(
            "oauth_result.html",
            ancestors=ANCESTORS,
            status_code=exc.status,
            ok=False,
            title="This sign-in cannot be completed",
            message=exc.detail + ".",
            payload=None,
        )
    target = outcome.redirect_url()
    if target:
        response: Response = RedirectResponse(target, status_code=302)
    else:
        response = render(
            "oauth_result.html",
            ancestors=ANCESTORS,
            ok=outcome.ok,
            title="Connected" if outcome.ok else "Not connected",
            message=MESSAGES.get(outcome.status_code, "The connection could not be completed."),
            payload={"statusCode": outcome.status_code, "connectionId": outcome.connection_id},
            fragment=urlencode(
                {"status_code": outcome.status_code, "connectionId": outcome.connection_id}
            ),
            targets=message_targets(runtime, outcome.tenant_id),
        )
    response.delete_cookie(COOKIE, path="/oauth")
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
