"""Authlib's model mixins (RFC 6749) over the sandbox's clients and :mod:`..store` rows."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin

from tether.sandbox.config import ClientConfig
from tether.sandbox.scopes import allowed_scope
from tether.sandbox.store import CodeRow, TokenRow

GRANT_TYPES = ("authorization_code", "refresh_token", "password")  # password: BASIC sources only


@dataclass(frozen=True)
class PatientGrant:
    """The resource owner's decision on the consent page: which patient they are, and the
    scope they shared when they narrowed what was asked (None: all of it)."""

    patient_id: str
    scope: str | None = None

    def get_user_id(self) -> str:
        return self.patient_id


class SandboxClient(ClientMixin):
    """A registered client; redirect URIs match exactly (RFC 6749 §3.1.2.2)."""

    def __init__(
        self, config: ClientConfig, redirect_uris: tuple[str, ...], *, asymmetric: bool = False
    ) -> None:
        self.config = config
        self.client_id = config.client_id
        self.redirect_uris = redirect_uris
        # How this confidential client must authenticate at this source.
        self.auth_method = "private_key_jwt" if asymmetric else "client_secret_basic"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # SMART App Launch: redirect_uri is always sent, never defaulted

    def get_allowed_scope(self, scope: str | None) -> str | None:
        return allowed_scope(scope)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        secret = self.config.client_secret
        return secret is not None and hmac.compare_digest(secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.config.is_public:
            return method == "none"
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


class SandboxCode(AuthorizationCodeMixin):
    """A stored authorization code, bound to client, redirect URI and PKCE challenge."""

    def __init__(self, digest: str, row: CodeRow) -> None:
        self.digest = digest
        self.row = row
        self.code_challenge = row.challenge
        self.code_challenge_method = row.challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


class SandboxToken(TokenMixin):
    """A stored token row, looked up as its access token or as its refresh token."""

    def __init__(self, row: TokenRow, *, as_refresh: bool) -> None:
        self.row = row
        self.as_refresh = as_refresh

    def check_client(self, client: SandboxClient) -> bool:
        return bool(client.client_id == self.row.client_id)

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int(self.row.access_expires_at - self.row.issued_at)

    def expires_at(self) -> float:
        if self.as_refresh:
            return self.row.refresh_expires_at
        return self.row.access_expires_at

    def is_expired(self) -> bool:
        return self.expires_at() <= time.time()

    def is_revoked(self) -> bool:
        return self.row.refresh_revoked if self.as_refresh else self.row.access_revoked

    def get_user(self) -> PatientGrant:
        return PatientGrant(self.row.patient)

    def get_client_id(self) -> str:
        return self.row.client_id
