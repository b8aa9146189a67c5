"""Establishing and re-establishing a connection: getOauthUrl, the launch link, the callback.

1. :func:`get_oauth_url` (member-authenticated) records an *attempt* and returns a one-time
   launch link ``/oauth/launch/<token>`` that expires within minutes. Only the token's SHA-256
   is stored.
2. :func:`launch` (the member's browser follows the link) claims the attempt once, discovers
   the source's SMART configuration, creates ``state`` (stored hashed) and a PKCE verifier
   (stored sealed), binds the attempt to this browser with a cookie, and answers the
   authorize URL to redirect to.
3. :func:`complete` (the source redirects the browser back) finds the attempt by the state's
   hash, requires the same browser, claims the attempt once, exchanges the code, validates the
   token response, seals the tokens and moves the connection to CONNECTED/PENDING in a new
   grant epoch. Errors leave an existing connection as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tether.accounts.return_urls import check_return_url
from tether.connections import lifecycle
from tether.connections.grants import start_grant
from tether.connections.queries import connection_for
from tether.connections.sources import (
    SourceProfile,
    not_shared_types,
    require_connectable,
    smart_client,
)
from tether.connections.tokens import store_tokens, with_grant_end
from tether.domain import Status
from tether.errors import (
    AuthenticationRequired,
    Conflict,
    Gone,
    InvalidRequest,
    OAuthProtocolError,
    SourceError,
    SourceIncompatible,
    SourceUnavailable,
    UpstreamError,
)
from tether.identity.liveness import require_live
from tether.identity.principals import MemberPrincipal
from tether.ids import new_secret, sha256_hex
from tether.logging import get_logger
from tether.oauth import oidc, rfc6749, rfc7636, scopes
from tether.runtime import Runtime
from tether.sealed import attempt_binding
from tether.store.models import AuditEvent, Connection, DataSource, Member, OAuthAttempt, Tenant

log = get_logger("tether.connections")
LAUNCH_PATH = "/oauth/launch/"


def _allowed_return_url(tenant: Tenant, return_url: str) -> bool:
    want = urlsplit(return_url)
    for allowed in tenant.return_urls:
        have = urlsplit(allowed)
        if (want.scheme, want.netloc, want.path) == (have.scheme, have.netloc, have.path):
            return True
    return False


def get_oauth_url(
    runtime: Runtime,
    *,
    member: MemberPrincipal,
    connection_id: str,
    return_url: str | None = None,
    trusted_return_url: str | None = None,
) -> str:
    """getOauthUrl: a short-lived, single-use launch link for this member and source.

    ``return_url`` must be a return URL RFC 8252 allows (:mod:`tether.accounts.return_urls`)
    and on the tenant's allow-list (compared exactly on scheme, host, port and path).
    ``trusted_return_url`` is one the calling adapter vouches for instead (the member page
    sends its own address); members never choose it.
    """
    now = runtime.clock()
    token = new_secret(32)
    with runtime.db.write() as session:
        source = require_connectable(session.get(DataSource, connection_id), connection_id)
        conn = connection_for(session, member_id=member.member_id, connection_id=source.id)
        if conn is not None:
            if Status(conn.status) == Status.ACCESS_ENDED:
                raise Conflict("access to this source has ended", code="ACCESS_ENDED")
            lifecycle.check(conn, Status.CONNECTED)
        if return_url is not None:
            check_return_url(return_url, field="returnUrl")
            tenant = session.get(Tenant, member.tenant_id)
            if tenant is None or not _allowed_return_url(tenant, return_url):
                raise InvalidRequest(
                    "returnUrl is not on this tenant's allow-list", code="RETURN_URL_NOT_ALLOWED"
                )
        session.add(
            OAuthAttempt(
                launch_hash=sha256_hex(token),
                member_id=member.member_id,
                data_source_id=source.id,
                return_url=return_url if return_url is not None else trusted_return_url,
                created_at=now,
                expires_at=now + timedelta(seconds=runtime.settings.launch_ttl),
            )
        )
    return f"{runtime.settings.public_base_url}{LAUNCH_PATH}{token}"


@dataclass(frozen=True)
class Launch:
    authorize_url: str
    browser_cookie: str


def launch(runtime: Runtime, *, token: str) -> Launch:
    """Claim the launch link once and build the authorization request (410 if used/expired).

    No network call happens inside a transaction: the link is claimed, then the source is
    discovered, then the state and verifier are written. When the source cannot be discovered
    the claim is released (502, the same link works again later).
    """
    now = runtime.clock()
    cookie = new_secret(24)
    with runtime.db.write() as session:
        attempt = session.scalar(
            select(OAuthAttempt).where(OAuthAttempt.launch_hash == sha256_hex(token))
        )
        if attempt is None or attempt.launched_at is not None or attempt.expires_at <= now:
            raise Gone("this connection link was already used or has expired", code="LINK_GONE")
        claimed = session.execute(
            update(OAuthAttempt)
            .where(OAuthAttempt.id == attempt.id, OAuthAttempt.launched_at.is_(None))
            .values(launched_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise Gone("this connection link was already used", code="LINK_GONE")
        tenant_id = _require_live_member(session, attempt.member_id)
        attempt_id, source_id, member_id = attempt.id, attempt.data_source_id, attempt.member_id
        source = require_connectable(session.get(DataSource, source_id), source_id)
    profile = SourceProfile.of(source.settings)
    try:
        with smart_client(runtime, source) as (client, config, base):
            # Scopes the source's discovery does not offer would fail the whole request at
            # many servers: they are dropped, and the audit says which.
            scope, dropped = scopes.offered(str(client.scope), config.scopes_supported)
            request = rfc7636.authorization_request(
                client,
                config,
                aud=base if profile.send_aud else None,
                scope=scope,
                extra=profile.extra_authorize_params,
            )
    except SourceError as exc:
        # Nothing reached the source: give the link back, so trying again later is true.
        log.warning(
            "launch: source unavailable",
            source=source_id,
            error=type(exc).__name__,
            reason=str(exc),
        )
        with runtime.db.write() as session:
            session.execute(
                update(OAuthAttempt)
                .where(OAuthAttempt.id == attempt_id, OAuthAttempt.state_hash.is_(None))
                .values(launched_at=None)
            )
        if isinstance(exc, SourceIncompatible):
            raise UpstreamError(
                f"{source.name} cannot be connected as configured: {exc}",
                code="SOURCE_INCOMPATIBLE",
            ) from None
        raise UpstreamError(
            "tether could not reach the data source. Please try the link again in a moment",
            code="SOURCE_UNAVAILABLE",
        ) from None
    with runtime.db.write() as session:
        session.execute(
            update(OAuthAttempt)
            .where(OAuthAttempt.id == attempt_id)
            .values(
                state_hash=sha256_hex(request.state),
                code_verifier=runtime.vault.encrypt(
                    request.code_verifier, binding=attempt_binding(attempt_id)
                ),
                browser_hash=sha256_hex(cookie),
                # The member now has the launch lifetime again to sign in at the source.
                expires_at=now + timedelta(seconds=runtime.settings.launch_ttl),
            )
        )
        if dropped:
            log.warning("launch: scopes the source does not offer", source=source_id)
            session.add(
                AuditEvent(
                    tenant_id=tenant_id,
                    member_id=member_id,
                    data_source_id=source_id,
                    action="oauth.scopes_dropped",
                    actor="system:oauth",
                    detail={"dropped": list(dropped), "requested": scope},
                    at=now,
                )
            )
    return Launch(authorize_url=request.url, browser_cookie=cookie)


@dataclass(frozen=True)
class Outcome:
    """Where the browser goes after the callback, and what it is told."""

    status_code: str
    connection_id: str
    return_url: str | None
    tenant_id: str

    @property
    def ok(self) -> bool:
        return self.status_code == "success"

    def redirect_url(self) -> str | None:
        if not self.return_url:
            return None
        parts = urlsplit(self.return_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query += [("status_code", self.status_code), ("connectionId", self.connection_id)]
        return urlunsplit(parts._replace(query=urlencode(query)))


def _require_live_member(session: Session, member_id: str) -> str:
    """The member's tenant id, when the member and the tenant are live (401 otherwise)."""
    member = session.get(Member, member_id)
    if member is None:
        raise AuthenticationRequired("this member no longer exists", code="MEMBER_DISABLED")
    require_live(session, tenant_id=member.tenant_id, member_id=member_id)
    return member.tenant_id


class CallbackRefused(InvalidRequest):
    """The callback cannot be matched to a live attempt from this browser; nothing changed."""


def _claim(session: Session, attempt: OAuthAttempt, now: datetime, outcome: str) -> bool:
    result = session.execute(
        update(OAuthAttempt)
        .where(OAuthAttempt.id == attempt.id, OAuthAttempt.completed_at.is_(None))
        .values(completed_at=now, outcome=outcome)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def complete(
    runtime: Runtime,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    browser_cookie: str | None,
) -> Outcome:
    """Finish the authorization at ``/oauth/callback``."""
    now = runtime.clock()
    if not state:
        raise CallbackRefused("the sign-in response has no state", code="STATE_MISSING")
    with runtime.db.write() as session:
        attempt = session.scalar(
            select(OAuthAttempt).where(OAuthAttempt.state_hash == sha256_hex(state))
        )
        if attempt is None:
            raise CallbackRefused("this sign-in response is not recognised", code="STATE_UNKNOWN")
        if attempt.completed_at is not None:
            raise CallbackRefused("this sign-in response was already used", code="STATE_REPLAYED")
        if not browser_cookie or attempt.browser_hash != sha256_hex(browser_cookie):
            raise CallbackRefused(
                "this sign-in was started in another browser", code="BROWSER_MISMATCH"
            )
        if attempt.expires_at <= now:
            raise Gone("this sign-in took too long; please start again", code="STATE_EXPIRED")
        tenant_id = _require_live_member(session, attempt.member_id)
        # Only RFC 6749 codes are stored, never free text from the query string.
        outcome_code = (
            _safe_error(error) if error else ("exchanging" if code else "invalid_request")
        )
        if not _claim(session, attempt, now, outcome_code):
            raise CallbackRefused("this sign-in response was already used", code="STATE_REPLAYED")
        verifier_sealed = attempt.code_verifier
        member_id, source_id, return_url = (
            attempt.member_id,
            attempt.data_source_id,
            attempt.return_url,
        )
        attempt.code_verifier = None  # single use: the verifier is gone either way
    if error or not code:
        status = _safe_error(error or "invalid_request")
        log.info("authorization refused at the source", source=source_id, error=status)
        return Outcome(status, source_id, return_url, tenant_id)
    assert verifier_sealed is not None
    verifier = runtime.vault.decrypt(verifier_sealed, binding=attempt_binding(attempt.id))
    status = _exchange_and_store(runtime, member_id, source_id, code, verifier)
    with runtime.db.write() as session:
        session.execute(
            update(OAuthAttempt).where(OAuthAttempt.id == attempt.id).values(outcome=status)
        )
    return Outcome(status, source_id, return_url, tenant_id)


_KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    }
)


def _safe_error(error: str) -> str:
    """Echo only RFC 6749 error codes, never free text from the query string."""
    return error if error in _KNOWN_ERRORS else "authorization_error"


def _exchange_and_store(
    runtime: Runtime, member_id: str, source_id: str, code: str, verifier: str
) -> str:
    with runtime.db.read() as session:
        source = require_connectable(session.get(DataSource, source_id), source_id)
    claims: dict[str, Any] | None = None
    try:
        with smart_client(runtime, source) as (client, config, _base):
            tokens = rfc6749.exchange_code(client, config, code=code, code_verifier=verifier)
            problem = _check_token_response(tokens)
            if problem is None and tokens.id_token:
                with runtime.http_client(source=source_id) as http:
                    claims = oidc.check_id_token(
                        http, tokens.id_token, config=config, client_id=str(client.client_id)
                    )
            if problem is None:
                tokens = with_grant_end(client, config, source, tokens)
    except OAuthProtocolError as exc:
        if exc.error == "invalid_client":
            # tether's client authentication was refused (secret, or the private_key_jwt
            # assertion: key not in the JWKS the source has, unknown kid): the operator's fix.
            log.error("code exchange: client authentication refused", source=source_id)
            return "invalid_client"
        log.warning("code exchange refused", source=source_id, error=exc.error)
        return _safe_error(exc.error) if exc.error in _KNOWN_ERRORS else "invalid_grant"
    except oidc.IdTokenRefused as exc:
        log.warning("token response rejected", source=source_id, reason=str(exc))
        return "invalid_token_response"
    except (SourceUnavailable, SourceIncompatible) as exc:
        log.warning("code exchange failed", source=source_id, reason=str(exc))
        return "source_unavailable"
    if problem:
        log.warning("token response rejected", source=source_id, reason=problem)
        return "invalid_token_response"
    fhir_user = claims.get("fhirUser") if claims else None
    return _connect(
        runtime, member_id, source, tokens, fhir_user if isinstance(fhir_user, str) else None
    )


def _check_token_response(tokens: rfc6749.TokenSet) -> str | None:
    if tokens.token_type.lower() != "bearer":
        return "token_type is not Bearer"
    if not tokens.patient:
        return "no patient context (SMART 'patient' missing)"
    return None


def _connect(
    runtime: Runtime,
    member_id: str,
    source: DataSource,
    tokens: rfc6749.TokenSet,
    fhir_user: str | None,
) -> str:
    """Store the grant and move the connection to CONNECTED/PENDING in a new grant epoch."""
    assert tokens.patient is not None  # checked by _check_token_response
    lifetime = SourceProfile.of(source.settings).authorization_lifetime
    not_shared = not_shared_types(source, tokens.scope)
    detail: dict[str, Any] = {"scope": tokens.scope}
    if not_shared:
        detail["not_shared"] = list(not_shared)  # a narrower grant than asked
    if fhir_user:
        detail["fhir_user"] = fhir_user  # verified: the id_token's signature was checked

    def seal(conn: Connection, now: datetime) -> None:
        store_tokens(runtime, conn, tokens, now=now)
        if tokens.refresh_token_expires_in is None:
            conn.authorization_expires_at = now + timedelta(seconds=lifetime) if lifetime else None

    try:
        start_grant(
            runtime,
            member_id=member_id,
            source_id=source.id,
            patient=tokens.patient,
            actor=f"member:{member_id}",
            seal=seal,
            detail=detail,
        )
    except Conflict:
        return "conflict"
    return "success"
