"""``POST /v1/members/{id}/app-links`` (tenant API key): a one-time link to the member page."""

from __future__ import annotations

from fastapi import APIRouter, status

from tether.api.schemas import AppLinkIn, AppLinkOut
from tether.http.deps import RuntimeDep, TenantCaller
from tether.http.openapi import problems
from tether.identity.app_links import APP_LINK_TTL, issue_app_link

router = APIRouter(prefix="/v1/members", tags=["members"])


@router.post(
    "/{member_id}/app-links",
    response_model=AppLinkOut,
    status_code=status.HTTP_201_CREATED,
    summary="A one-time link that opens the member's connections page",
    responses=problems(400),
    description=f"The link works once and expires after {APP_LINK_TTL} seconds. Its secret is "
    "in the URL fragment, which browsers never send to a server. See docs/web.md.",
)
def create_app_link(
    member_id: str, tenant: TenantCaller, runtime: RuntimeDep, body: AppLinkIn | None = None
) -> AppLinkOut:
    link = issue_app_link(
        runtime, tenant=tenant, member_id=member_id, display=body.display if body else "popup"
    )
    return AppLinkOut(url=link.url, expires_at=link.expires_at)
