"""GraphQL at ``/graphql``: tether's connection operations, served so that the health SDK's
own client can use them too (docs/graphql.md, docs/sdk-compat.md).

The app factory mounts it with::

    app.include_router(graphql.create_router())
    app.add_middleware(graphql.GraphQLCORSMiddleware, **graphql.cors_options(settings))
"""

from __future__ import annotations

from typing import Any

from tether.graphql.cors import GraphQLCORSMiddleware, cors_origins
from tether.graphql.view import GRAPHQL_PATH, create_router
from tether.settings import Settings

__all__ = ["GRAPHQL_PATH", "GraphQLCORSMiddleware", "cors_options", "create_router"]


def cors_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``app.add_middleware(GraphQLCORSMiddleware, **…)``."""
    return {"paths": (GRAPHQL_PATH,), "origins": cors_origins(settings)}
