"""HTTP routes of a source's authorization server (SMART App Launch 2.x standalone launch).

- ``GET  /{source}/fhir/.well-known/smart-configuration`` — discovery.
- ``GET  /{source}/oauth/authorize`` — validates the request (client, exact redirect
  URI, PKCE S256, ``aud``) and shows the login + consent page.
- ``POST /{source}/oauth/authorize`` — the page's form: approve (with a patient) or deny.
- ``POST /{source}/oauth/token`` — RFC 6749 §4.1.3 / §6.
- ``POST /{source}/oauth/revoke`` — RFC 7009.  ``POST /{source}/oauth/introspect`` — RFC 7662.

Errors before the client and redirect URI are known render an HTML page (RFC 6749
§4.1.2.1: never redirect to an unverified URI); later ones go back to the client.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence

from authlib.oauth2.rfc6749 import InsecureTransportError, OAuth2Error
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tether.sandbox.controller import Sandbox
from tether.sandbox.faults import status_fault
from tether.sandbox.fhir.conformance import RESOURCE_TYPES, smart_configuration
from tether.sandbox.oauth.models import PatientGrant
from tether.sandbox.oauth.pages import ANSWER_FIELDS, CSRF_COOKIE, consent_page, error_page
from tether.sandbox.oauth.server import MOUNT_URL, SourceAuthorizationServer
from tether.sandbox.oauth.wrappers import Pairs, SandboxOAuth2Request
from tether.sandbox.scopes import narrow
from tether.sandbox.urls import mount_url, source_urls

INSECURE = (
    "The sandbox's OAuth endpoints need https or a loopback host (RFC 6749 §3.1); "
    "serve it on 127.0.0.1/localhost or behind TLS."
)
GRANT_COUNTERS = {"authorization_code": "code_exchanges", "refresh_token": "refreshes"}


def oauth_routes(sandbox: Sandbox) -> list[Route]:
    """Routes relative to the sandbox mount."""

    def server_for(request: Request) -> SourceAuthorizationServer:
        source = request.path_params["source"]
        sandbox.source(source)
        MOUNT_URL.set(mount_url(sandbox, request))
        return sandbox.servers[source]

    def wrap(request: Request, query: Pairs, form: Pairs) -> SandboxOAuth2Request:
        return SandboxOAuth2Request(
            method=request.method,
            uri=str(request.url),
            headers=request.headers,
            query=query,
            form=form,
        )

    def refuse(
        server: SourceAuthorizationServer, req: SandboxOAuth2Request, error: OAuth2Error
    ) -> Response:
        if error.redirect_uri:
            response: Response = server.handle_error_response(req, error)
            return response
        return error_page(error.error, error.description)

    def show(
        request: Request,
        params: Sequence[tuple[str, str]],
        *,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        source = request.path_params["source"]
        config = sandbox.source(source)
        return consent_page(
            source_name=config.name,
            action=str(request.url.path),
            params=params,
            patients=sandbox.patients(source),
            csrf=secrets.token_urlsafe(24),
            types=RESOURCE_TYPES if config.choose_types else (),
            error=error,
            status=status,
        )

    async def smart_config(request: Request) -> Response:
        source = request.path_params["source"]
        config = sandbox.source(source)
        if config.smart_v1:  # SMART 1.0: the endpoints are only in the CapabilityStatement
            return JSONResponse({"error": "not found"}, 404)
        urls = source_urls(sandbox, request, source)
        return JSONResponse(
            smart_configuration(urls.issuer, asymmetric=config.asymmetric_client_auth)
        )

    async def jwks(request: Request) -> Response:
        """The key set the id_tokens are signed with (the configuration's ``jwks_uri``)."""
        sandbox.source(request.path_params["source"])
        return JSONResponse(sandbox.id_tokens.jwks())

    async def prepare(server: SourceAuthorizationServer, form: Pairs) -> None:
        """Fetch the client's JWKS for an assertion, outside Authlib's synchronous code."""
        await sandbox.jwks.prepare(dict(form), server.query_client)

    async def authorize(request: Request) -> Response:
        server = server_for(request)
        source = request.path_params["source"]
        if request.method == "GET":
            sandbox.counters(source).bump("authorize_pages")
            params = request.query_params.multi_items()
            answer: dict[str, str] = {}
        else:
            sandbox.counters(source).bump("consents")
            form = (await request.form()).multi_items()
            params = [(k, str(v)) for k, v in form if k not in ANSWER_FIELDS]
            answer = {k: str(v) for k, v in form if k in ANSWER_FIELDS}
            shared = [str(v) for k, v in form if k == "share"]
        try:
            req = wrap(
                request,
                params if request.method == "GET" else [],
                params if request.method == "POST" else [],
            )
        except InsecureTransportError:
            return error_page("insecure_transport", INSECURE)
        try:
            grant = server.get_consent_grant(request=req, end_user=None)
        except OAuth2Error as error:
            return refuse(server, req, error)
        if request.method == "GET":
            return show(request, params)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, answer.get("csrf", "")):
            return error_page(
                "access_denied",
                "this consent form expired or was not sent from this page; start again",
            )
        user = None
        if answer.get("decision") == "approve":
            patient = answer.get("patient", "")
            if not sandbox.catalog.has_patient(source, patient):
                return show(request, params, error="Pick one of the patients.", status=400)
            narrowed = None
            if sandbox.source(source).choose_types:
                narrowed = narrow(dict(params).get("scope", ""), shared, RESOURCE_TYPES)
            user = PatientGrant(patient, scope=narrowed)
        response: Response = server.create_authorization_response(
            request=req, grant_user=user, grant=grant
        )
        return response

    async def token(request: Request) -> Response:
        server = server_for(request)
        source = request.path_params["source"]
        form = [(k, str(v)) for k, v in (await request.form()).multi_items()]
        counters = sandbox.counters(source)
        counters.bump("token_requests")
        counter = GRANT_COUNTERS.get(dict(form).get("grant_type", ""))
        if counter:
            counters.bump(counter)
        knobs = sandbox.knobs(source)
        if knobs.token_endpoint_faults:
            fault = status_fault(knobs, sandbox.dice(source), counters, token_endpoint=True)
            if fault is not None:
                return fault
        try:
            req = wrap(request, [], form)
        except InsecureTransportError:
            return JSONResponse({"error": "invalid_request", "error_description": INSECURE}, 400)
        await prepare(server, form)
        response: Response = server.create_token_response(req)
        return response

    def endpoint(name: str, counter: str):  # type: ignore[no-untyped-def]
        async def handle(request: Request) -> Response:
            server = server_for(request)
            sandbox.counters(request.path_params["source"]).bump(counter)
            form = [(k, str(v)) for k, v in (await request.form()).multi_items()]
            try:
                req = wrap(request, [], form)
            except InsecureTransportError:
                return JSONResponse({"error": "invalid_request"}, 400)
            await prepare(server, form)
            response: Response = server.create_endpoint_response(name, req)
            return response

        return handle

    return [
        Route("/{source}/fhir/.well-known/smart-configuration", smart_config, methods=["GET"]),
        Route("/{source}/oauth/authorize", authorize, methods=["GET", "POST"]),
        Route("/{source}/oauth/jwks", jwks, methods=["GET"]),
        Route("/{source}/oauth/token", token, methods=["POST"]),
        Route("/{source}/oauth/revoke", endpoint("revocation", "revocations"), methods=["POST"]),
        Route(
            "/{source}/oauth/introspect",
            endpoint("introspection", "introspections"),
            methods=["POST"],
        ),
    ]
