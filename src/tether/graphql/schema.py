"""tether's GraphQL schema: the connection operations plus the health SDK's identity and
Subscription fields.

One schema serves tether's own clients and the SDK's: it is a superset of the SDK's wire
interface in both versions served, 1.70 and 2.0 (every document either sends validates
against it). Limits keep a document cheap
to validate and run: depth, aliases and tokens.
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.types import ExecutionContext

from tether.graphql.connections import ConnectionMutation, ConnectionQuery
from tether.graphql.identity import IdentityMutation, IdentityQuery
from tether.graphql.subscriptions import SubscriptionQuery

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
# (Query field, the resolver's argument, the SDK's name for it)
WIRE_ARGUMENT_NAMES = (("subscriptions", "source", "_source"),)


@strawberry.type
class Query(ConnectionQuery, SubscriptionQuery, IdentityQuery):
    pass


@strawberry.type
class Mutation(ConnectionMutation, IdentityMutation):
    pass


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Errors are answered, not logged: ``tether.graphql.errors`` logs unexpected ones."""


def wire_argument_names(built: Schema) -> Schema:
    """Give arguments the SDK's names that a Strawberry resolver cannot take.

    Strawberry calls every resolver as ``resolver(_source, info, **arguments)``, so an
    argument named ``_source`` (the FHIR search parameter of ``subscriptions``) collides with
    its first parameter. The resolver declares it as ``source``; the schema names it
    ``_source`` and graphql-core hands it over as ``source`` (``out_name``).
    """
    query = built._schema.query_type  # graphql-core's schema, as Strawberry built it
    assert query is not None
    for field_name, python_name, wire_name in WIRE_ARGUMENT_NAMES:
        field = query.fields[field_name]
        argument = field.args.pop(python_name)
        argument.out_name = python_name
        field.args[wire_name] = argument
    return built


def create_schema() -> Schema:
    return wire_argument_names(
        Schema(
            query=Query,
            mutation=Mutation,
            extensions=[
                # Factories: each operation gets its own extension instances.
                lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
                lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
                lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            ],
        )
    )


schema = create_schema()
