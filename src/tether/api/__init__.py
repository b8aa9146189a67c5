"""REST under ``/v1``: the routers, their wire shapes (:mod:`tether.api.schemas`), and nothing
else. Authentication and problem documents are the shared HTTP kit's (:mod:`tether.http`); the
composition root (:mod:`tether.bootstrap`) mounts the routers."""

from __future__ import annotations

from fastapi import APIRouter

from tether.api.routes import (
    app_links,
    audit,
    connections,
    data_sources,
    events,
    fhir,
    health,
    jwks,
    member_connections,
    members,
    metrics,
    tenant,
)


def routers() -> list[APIRouter]:
    """Every REST router, in the order the OpenAPI document lists them."""
    return [
        health.router,
        jwks.router,
        tenant.router,
        members.router,
        member_connections.router,
        app_links.router,
        data_sources.router,
        connections.router,
        *fhir.routers,
        audit.router,
        events.router,
        metrics.router,
    ]
