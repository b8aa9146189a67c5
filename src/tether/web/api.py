"""``POST /v1/members/{id}/app-links`` (tenant API key): a one-time link to the member page."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, status
from pydantic import Field

from tether.api.deps import RuntimeDep, TenantPrincipal
from tether.api.schemas import Wire
from tether.web.links import APP_LINK_TTL, issue_app_link

router = APIRouter(prefix="/v1/members", tags=["members"])


class AppLinkIn(Wire):
    display: Literal["popup", "redirect"] = Field(
        default="popup",
        description="how the page opens a source's sign-in: a popup, or this window "
        "(for webviews that cannot open popups)",
    )


class AppLinkOut(Wire):
    url: str = Field(description="open it in the member's browser or webview; it works once")
    expires_at: datetime


@router.post(
    "/{member_id}/app-links",
    response_model=AppLinkOut,
    status_code=status.HTTP_201_CREATED,
    summary="A one-time link that opens the member's connections page",
    description=f"The link works once and expires after {APP_LINK_TTL} seconds. Its secret is "
    "in the URL fragment, which browsers never send to a server. See docs/web.md.",
)
def create_app_link(
    member_id: str, tenant: TenantPrincipal, runtime: RuntimeDep, body: AppLinkIn | None = None
) -> AppLinkOut:
    link = issue_app_link(runtime, tenant, member_id, body.display if body else "popup")
    return AppLinkOut(url=link.url, expires_at=link.expires_at)
