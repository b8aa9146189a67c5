"""tether's GraphQL schema: the connection operations plus the health SDK's identity fields.

One schema serves tether's own clients and the SDK's: it is a superset of the SDK's wire
interface (every document the SDK sends validates against it). Limits keep a document cheap
to validate and run: depth, aliases and tokens.
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.types import ExecutionContext

from tether.graphql.connections import ConnectionMutation, ConnectionQuery
from tether.graphql.identity import IdentityMutation, IdentityQuery

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000


@strawberry.type
class Query(ConnectionQuery, IdentityQuery):
    pass


@strawberry.type
class Mutation(ConnectionMutation, IdentityMutation):
    pass


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Errors are answered, not logged: ``tether.graphql.errors`` logs unexpected ones."""


def create_schema() -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            # Factories: each operation gets its own extension instances.
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ],
    )


schema = create_schema()
