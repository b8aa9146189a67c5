"""The login + consent page (plain HTML form, no JavaScript) and the error page."""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from tether.sandbox.data.catalog import PatientSummary
from tether.sandbox.scopes import has_offline_access

_env = Environment(
    loader=PackageLoader("tether.sandbox", "templates"),
    autoescape=select_autoescape(["html"]),
)
#: Form fields that are the user's answer, not part of the OAuth request.
ANSWER_FIELDS = ("patient", "decision", "csrf", "share")
CSRF_COOKIE = "sandbox_consent"


def consent_page(
    *,
    source_name: str,
    action: str,
    params: Sequence[tuple[str, str]],
    patients: list[PatientSummary],
    csrf: str,
    types: tuple[str, ...] = (),
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The page; ``types``: the resource types the member may untick (none: all or nothing)."""
    data = dict(params)
    html = _env.get_template("consent.html").render(
        source_name=source_name,
        action=action,
        params=params,
        patients=patients,
        client_id=data.get("client_id", ""),
        scope=data.get("scope", ""),
        offline=has_offline_access(data.get("scope")),
        error=error,
        csrf=csrf,
        types=types,
    )
    response = HTMLResponse(html, status, headers={"Cache-Control": "no-store"})
    # Double submit: the form's secret must come back with this cookie, which a browser
    # sends only with a POST from the sandbox's own pages (SameSite=Strict).
    response.set_cookie(
        CSRF_COOKIE, csrf, path=action, httponly=True, samesite="strict", max_age=3600
    )
    return response


def error_page(error: str, description: str | None) -> HTMLResponse:
    html = _env.get_template("error.html").render(error=error, description=description)
    return HTMLResponse(html, 400)
