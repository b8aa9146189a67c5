"""The absolute URLs of a source: issuer, FHIR base (the SMART ``aud``), endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tether.sandbox.controller import Sandbox


@dataclass(frozen=True)
class SourceUrls:
    mount: str
    issuer: str

    @property
    def fhir_base(self) -> str:
        return f"{self.issuer}/fhir"


def mount_url(sandbox: Sandbox, request: Request) -> str:
    """``public_url`` if configured, else the URL this request reached the mount at."""
    if sandbox.config.public_url:
        return sandbox.config.public_url.rstrip("/")
    # The mount's own root_path (Starlette's base_url is the outermost app's root).
    root_path = request.scope.get("root_path", "")
    return str(request.url.replace(path=root_path, query="", fragment="")).rstrip("/")


def source_urls(sandbox: Sandbox, request: Request, source_id: str) -> SourceUrls:
    mount = mount_url(sandbox, request)
    return SourceUrls(mount=mount, issuer=f"{mount}/{source_id}")
