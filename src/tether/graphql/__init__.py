"""GraphQL at ``/graphql``: tether's connection operations, served so that the health SDK's
own client can use them too (docs/graphql.md, docs/sdk-compat.md).

The app factory mounts it with::

    app.include_router(graphql.create_router())
    app.add_middleware(graphql.GraphQLCORSMiddleware, **graphql.cors_options(settings, runtime))
"""

from __future__ import annotations

from functools import partial
from typing import Any

from tether.accounts.tenants import browser_origins
from tether.graphql.cors import GraphQLCORSMiddleware, cors_origins
from tether.graphql.view import GRAPHQL_PATH, create_router
from tether.runtime import Runtime
from tether.settings import Settings

__all__ = ["GRAPHQL_PATH", "GraphQLCORSMiddleware", "cors_options", "create_router"]


def cors_options(settings: Settings, runtime: Runtime | None = None) -> dict[str, Any]:
    """Keyword arguments for ``app.add_middleware(GraphQLCORSMiddleware, **…)``; with a
    runtime, the live tenants' allowed origins are allowed too."""
    options: dict[str, Any] = {"paths": (GRAPHQL_PATH,), "origins": cors_origins(settings)}
    if runtime is not None:
        options["tenant_origins"] = partial(browser_origins, runtime)
    return options
