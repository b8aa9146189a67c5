"""The HTTP side of ``/graphql``: Strawberry's FastAPI router, adjusted for the SDK's client.

Two adjustments to a stock GraphQL-over-HTTP server (docs/sdk-compat.md):

1. A POST body is JSON whatever its ``Content-Type``: the SDK's authenticated calls arrive as
   ``text/plain;charset=UTF-8`` (with ``Accept: */*``).
2. Every error is answered with HTTP 200 and OperationOutcome ``extensions``
   (:mod:`tether.graphql.errors`), including a body that is not JSON, a missing query, a
   syntax or validation error and GET requests; any other status reaches the SDK as a
   network error. (HTTP 200 for every response is what the GraphQL-over-HTTP specification
   recommends for ``application/json`` responses.)

Queries over GET, GraphiQL, batching, multipart uploads and WebSocket subscriptions are off.
"""

from __future__ import annotations

import json
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult

from tether.graphql.context import Context, get_context
from tether.graphql.errors import format_error, request_error
from tether.graphql.schema import schema

GRAPHQL_PATH = "/graphql"
MAX_BODY_BYTES = 64 * 1024
JSON_MEDIA_TYPE = "application/json"

_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
_ISSUES = {400: "structure", 413: "too-long"}


class TetherGraphQLRouter(GraphQLRouter[Context, None]):
    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method != "POST":
            raise HTTPException(405, "send GraphQL requests as POST with a JSON body")
        body = await request.get_body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"the request body exceeds {MAX_BODY_BYTES} bytes")
        data = self.parse_json(body)
        if isinstance(data, list):
            raise HTTPException(400, "batched requests are not supported")
        if not isinstance(data, dict):
            raise HTTPException(400, "the request body must be a JSON object")
        query, variables = data.get("query"), data.get("variables")
        operation_name, extensions = data.get("operationName"), data.get("extensions")
        if not isinstance(query, str) or not query.strip():
            raise HTTPException(400, "the request has no GraphQL query")
        if not isinstance(variables, dict | None) or not isinstance(extensions, dict | None):
            raise HTTPException(400, "variables and extensions must be JSON objects")
        if not isinstance(operation_name, str | None):
            raise HTTPException(400, "operationName must be a string")
        return GraphQLRequestData(
            query=query,
            variables=variables,
            operation_name=operation_name,
            extensions=extensions,
        )

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [format_error(error) for error in result.errors]
        if result.extensions:
            response["extensions"] = result.extensions
        return response

    async def run(  # type: ignore[override]
        self, request: Request, context: Any = None, root_value: Any = None
    ) -> Response:
        try:
            response: Response = await super().run(request, context, root_value)
        except HTTPException as exc:
            code = _HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
            entry = request_error(
                exc.reason,
                code=code,
                status=exc.status_code,
                issue_code=_ISSUES.get(exc.status_code),
            )
            return Response(
                json.dumps({"data": None, "errors": [entry]}, separators=(",", ":")),
                media_type=JSON_MEDIA_TYPE,
            )
        return response


def create_router() -> TetherGraphQLRouter:
    """The ``/graphql`` router (``app.include_router(create_router())``)."""
    return TetherGraphQLRouter(
        schema,
        path=GRAPHQL_PATH,
        graphql_ide=None,
        allow_queries_via_get=False,
        context_getter=get_context,
        subscription_protocols=(),
        multipart_uploads_enabled=False,
        include_in_schema=False,
    )
