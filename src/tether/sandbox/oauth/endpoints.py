"""RFC 7009 token revocation and RFC 7662 token introspection over the sandbox store.

Both accept the confidential client (``client_secret_basic``, or ``private_key_jwt`` where the
source asks for it) and the public client (``none``, identified by ``client_id``); a client
only sees and revokes its own tokens.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from tether.sandbox.oauth.grants import CLIENT_AUTH_METHODS
from tether.sandbox.oauth.models import SandboxClient, SandboxToken
from tether.sandbox.oauth.source import SourceServer


def _query(server: SourceServer, token: str, hint: str | None) -> SandboxToken | None:
    order = (
        ("refresh_token", "access_token")
        if hint == "refresh_token"
        else ("access_token", "refresh_token")
    )
    for kind in order:
        if kind == "access_token":
            row = server.store.find_access(token, source=server.source_id)
        else:
            row = server.store.find_refresh(token, source=server.source_id)
        if row is not None:
            return SandboxToken(row, as_refresh=kind == "refresh_token")
    return None


class SandboxRevocationEndpoint(RevocationEndpoint):
    """RFC 7009: revoking either token of a grant kills every token of that grant."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> SandboxToken | None:
        return _query(self.server, token_string, token_type_hint)

    def revoke_token(self, token: SandboxToken, request: Any) -> None:
        self.server.store.revoke_grant(token.row.grant_id)


class SandboxIntrospectionEndpoint(IntrospectionEndpoint):
    """RFC 7662 with the SMART ``patient`` context added to active tokens."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> SandboxToken | None:
        return _query(self.server, token_string, token_type_hint)

    def check_permission(self, token: SandboxToken, client: SandboxClient, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: SandboxToken) -> dict[str, Any]:
        server: SourceServer = self.server
        return {
            "active": True,
            "client_id": token.row.client_id,
            "token_type": "refresh_token" if token.as_refresh else "Bearer",
            "scope": token.row.scope,
            "sub": token.row.patient,
            "patient": token.row.patient,
            "aud": server.fhir_base_url,
            "iss": server.issuer,
            "exp": int(token.expires_at()),
            "iat": int(token.row.issued_at),
        }
