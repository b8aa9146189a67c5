"""One Authlib ``AuthorizationServer`` per sandbox source (RFC 6749, SMART App Launch 2.x).

Token responses carry the SMART launch context ``patient`` next to ``access_token``,
``token_type: Bearer``, ``expires_in`` and ``scope``; a ``refresh_token`` is issued only
when ``offline_access`` was granted. Access-token lifetime comes from the source's
``access_token_lifetime`` knob at the moment the token is issued.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from starlette.responses import Response

from tether.sandbox.config import SandboxConfig
from tether.sandbox.data.patients import patient_specs
from tether.sandbox.knobs import Knobs
from tether.sandbox.oauth.assertions import JwksCache, PrivateKeyJWTAssertion, SeenJtis
from tether.sandbox.oauth.endpoints import (
    SandboxIntrospectionEndpoint,
    SandboxRevocationEndpoint,
)
from tether.sandbox.oauth.grants import (
    AuthorizationCodeGrant,
    PasswordGrant,
    RefreshTokenGrant,
    S256CodeChallenge,
    audience_extension,
    code_grant_id,
)
from tether.sandbox.oauth.id_tokens import IdTokenSigner
from tether.sandbox.oauth.models import PatientGrant, SandboxClient
from tether.sandbox.oauth.wrappers import to_response
from tether.sandbox.scopes import has_offline_access
from tether.sandbox.store import GrantStore, TokenRow, digest

#: The absolute URL of the sandbox mount for the request being served.
MOUNT_URL: ContextVar[str] = ContextVar("sandbox_mount_url")


class SmartTokenGenerator(BearerTokenGenerator):
    """RFC 6750 bearer tokens plus the SMART ``patient`` launch context."""

    def generate(
        self,
        grant_type: str,
        client: SandboxClient,
        user: PatientGrant | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        include = include_refresh_token and has_offline_access(scope)
        token: dict[str, Any] = super().generate(
            grant_type, client, user, scope, expires_in, include
        )
        if user is not None:
            token["patient"] = user.patient_id
        return token


class SourceAuthorizationServer(AuthorizationServer):
    """The authorization server of one source; Authlib runs the protocol."""

    def __init__(
        self,
        *,
        source_id: str,
        config: SandboxConfig,
        store: GrantStore,
        knobs: Callable[[], Knobs],
        jwks: JwksCache,
        id_tokens: IdTokenSigner,
    ) -> None:
        super().__init__(scopes_supported=None)
        self.source_id = source_id
        self.store = store
        self.code_lifetime = config.code_lifetime
        self.refresh_lifetime = config.refresh_token_lifetime
        self.knobs = knobs
        self.id_tokens = id_tokens
        source = config.source(source_id)
        self.reject_aud = source is not None and source.reject_aud
        self.grant_lifetime = source.grant_lifetime if source is not None else None
        asymmetric = source is not None and source.asymmetric_client_auth
        self._clients = {
            c.client_id: SandboxClient(c, config.redirect_uris_of(c), asymmetric=asymmetric)
            for c in config.clients
        }
        self.jwks = jwks
        self.register_client_auth_method(
            "private_key_jwt",
            PrivateKeyJWTAssertion(
                token_endpoint=lambda: self.token_endpoint, jwks=jwks, seen=SeenJtis()
            ),
        )
        self.register_token_generator(
            "default",
            SmartTokenGenerator(
                access_token_generator=lambda **_: secrets.token_urlsafe(32),
                refresh_token_generator=lambda **_: secrets.token_urlsafe(48),
                expires_generator=lambda client, grant_type: knobs().access_token_lifetime,
            ),
        )
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(), audience_extension])
        self.register_grant(RefreshTokenGrant)
        self._portal_password = source.basic_password if source else None
        self._portal_users = (
            {spec.id for spec in patient_specs(source)} if source is not None else set()
        )
        if self._portal_password is not None:
            self.register_grant(PasswordGrant)
        self.register_endpoint(SandboxRevocationEndpoint)
        self.register_endpoint(SandboxIntrospectionEndpoint)

    @property
    def issuer(self) -> str:
        return f"{MOUNT_URL.get().rstrip('/')}/{self.source_id}"

    @property
    def fhir_base_url(self) -> str:
        return f"{self.issuer}/fhir"

    @property
    def token_endpoint(self) -> str:
        """The ``aud`` a client assertion must name (for revocation too)."""
        return f"{self.issuer}/oauth/token"

    def portal_user(self, username: str, password: str) -> PatientGrant | None:
        """The patient a BASIC source's portal credentials open, if they are right."""
        if self._portal_password is None or username not in self._portal_users:
            return None
        if not hmac.compare_digest(password.encode(), self._portal_password.encode()):
            return None
        return PatientGrant(patient_id=username)

    # -- Authlib integration hooks ---------------------------------------------------
    def query_client(self, client_id: str) -> SandboxClient | None:
        return self._clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Keep the token, and finish the response Authlib sends (the same dict): the grant's
        end (``refresh_token_expires_in``), the ``id_token``, ``need_patient_banner``."""
        now = time.time()
        refresh = token.get("refresh_token")
        previous = getattr(request, "refresh_token", None)
        code = getattr(request, "authorization_code", None)
        if previous is not None:
            grant_id = previous.row.grant_id
        elif code is not None:
            grant_id = code_grant_id(code.digest)  # a replay of the code revokes these
        else:
            grant_id = secrets.token_hex(16)
        refresh_expires_at = now + self.refresh_lifetime if refresh else now
        if refresh and self.grant_lifetime is not None:
            # A grant of fixed length: refreshing does not extend it.
            end = previous.row.refresh_expires_at if previous is not None else None
            refresh_expires_at = end if end is not None else now + self.grant_lifetime
            token["refresh_token_expires_in"] = max(0, int(refresh_expires_at - now))
        if "openid" in str(token.get("scope", "")).split():
            token["id_token"] = self.id_tokens.sign(
                issuer=self.issuer,
                patient=request.user.patient_id,
                client_id=request.client.client_id,
                fhir_base=self.fhir_base_url,
                forged=self.knobs().forge_id_token,
            )
        token["need_patient_banner"] = False
        self.store.save_token(
            TokenRow(
                access_digest=digest(token["access_token"]),
                refresh_digest=digest(refresh) if refresh else None,
                source=self.source_id,
                client_id=request.client.client_id,
                scope=token.get("scope", ""),
                patient=request.user.patient_id,
                issued_at=now,
                access_expires_at=now + int(token.get("expires_in", 0)),
                refresh_expires_at=refresh_expires_at,
                access_revoked=False,
                refresh_revoked=False,
                grant_id=grant_id,
            )
        )

    def create_oauth2_request(self, request: Any) -> Any:
        return request  # already a SandboxOAuth2Request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        return to_response(status, body, headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None
