"""RFC 6749 grants as the sandbox runs them, with the SMART App Launch 2.x rules.

- Authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636) REQUIRED for every
  client and ``S256`` the only method (SMART App Launch 2.x §"PKCE": ``plain`` SHALL NOT
  be supported); codes are short-lived, single use and bound to client, redirect URI
  and challenge.
- ``aud`` must be this source's FHIR base URL (SMART App Launch 2.x, authorization
  request: "the EHR SHALL reject any request whose aud does not match").
- Refresh token grant (RFC 6749 §6) with rotation: a refresh answers a new refresh
  token and the used one stops working.
"""

from __future__ import annotations

import time
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, grants
from authlib.oauth2.rfc7636 import CodeChallenge

from tether.sandbox.oauth.models import PatientGrant, SandboxClient, SandboxCode, SandboxToken
from tether.sandbox.oauth.source import SourceServer
from tether.sandbox.store import CodeRow, digest

CLIENT_AUTH_METHODS = ["client_secret_basic", "none", "private_key_jwt"]


class S256CodeChallenge(CodeChallenge):
    """RFC 7636 with the challenge required on every request and only ``S256``."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be 'S256'")
        super().validate_code_challenge(grant, redirect_uri)


def check_audience(grant: Any, redirect_uri: Any) -> None:
    """SMART ``aud``: the FHIR base URL of the source the client wants to talk to (a source
    set to ``reject_aud`` refuses any ``aud``, as some servers do)."""
    server: SourceServer = grant.server
    aud = grant.request.payload.data.get("aud")
    if server.reject_aud:
        if aud is not None:
            raise InvalidRequestError("unexpected parameter 'aud'")
        return
    if not aud or aud.rstrip("/") != server.fhir_base_url.rstrip("/"):
        raise InvalidRequestError("'aud' must be this source's FHIR base URL")


def audience_extension(grant: Any) -> None:
    grant.register_hook("after_validate_authorization_request_payload", check_audience)


def code_grant_id(code_digest: str) -> str:
    """The grant id of the tokens issued for one authorization code (refreshes keep it)."""
    return "code:" + code_digest[:32]


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """RFC 6749 §4.1 over the sandbox store."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    @property
    def _server(self) -> SourceServer:
        server: SourceServer = self.server
        return server

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        self._server.store.save_code(
            code,
            CodeRow(
                source=self._server.source_id,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                # What the member shared: all that was asked, or less (the consent page).
                scope=request.user.scope or request.scope,
                patient=request.user.patient_id,
                challenge=data.get("code_challenge"),
                challenge_method=data.get("code_challenge_method"),
                expires_at=time.time() + self._server.code_lifetime,
            ),
        )

    def query_authorization_code(self, code: str, client: SandboxClient) -> SandboxCode | None:
        if self._server.store.code_was_used(code):
            # RFC 6749 §4.1.2: a code used twice is refused, and the tokens issued from it
            # are revoked (whoever replays it may have stolen it).
            self._server.store.revoke_grant(code_grant_id(digest(code)))
            return None
        row = self._server.store.find_code(
            code, source=self._server.source_id, client_id=client.client_id
        )
        return None if row is None else SandboxCode(digest(code), row)

    def delete_authorization_code(self, authorization_code: SandboxCode) -> None:
        self._server.store.delete_code(authorization_code.digest)

    def authenticate_user(self, authorization_code: SandboxCode) -> PatientGrant:
        return PatientGrant(authorization_code.row.patient)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """RFC 6749 §6 with rotation (OAuth 2.0 Security BCP, RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def _server(self) -> SourceServer:
        server: SourceServer = self.server
        return server

    def authenticate_refresh_token(self, refresh_token: str) -> SandboxToken | None:
        row = self._server.store.find_refresh(refresh_token, source=self._server.source_id)
        if row is None:
            return None
        token = SandboxToken(row, as_refresh=True)
        if token.is_revoked() or token.is_expired():
            return None
        return token

    def authenticate_user(self, refresh_token: SandboxToken) -> PatientGrant:
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token: SandboxToken) -> None:
        self._server.store.retire_refresh(refresh_token.row.access_digest)


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    """RFC 6749 §4.3, only at BASIC sources (a patient portal's username and password)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def authenticate_user(self, username: str, password: str) -> PatientGrant | None:
        server: SourceServer = self.server
        return server.portal_user(username, password)
