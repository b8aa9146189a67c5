"""Account operations. API keys are stored as keyed hashes; member tokens are short-lived JWTs.

An API key reads ``tk_<key id>_<secret>``: the key id finds the row, the secret is compared
with its HMAC. A member token is an HS256 JWT (``iss`` tether, ``aud`` ``tether:member``,
``sub`` the member, ``tid`` the tenant, ``exp`` minutes away, and ``kid`` the API key that
minted it, when one did); every member call verifies its signature, expiry and audience, and
that the member, the tenant and the issuing key are still live.

:func:`require_live` is the one place that decides whether a member, a tenant and an API key
are still live; member tokens, the SDK's refresh tokens and the member page's app links and
sessions all go through it. Revoking a key therefore stops everything it minted: its member
tokens, the SDK refresh tokens and access tokens derived from them, its app links and the
member-page sessions they opened. Tokens minted by the operator (``tether members token``,
``tether demo``) carry no ``kid`` and stay valid until they expire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tether.errors import AuthenticationRequired, Conflict, InvalidRequest, NotFound
from tether.ids import constant_time_equals, keyed_hash, new_id, new_secret
from tether.store.models import ApiKey, Member, Tenant, utcnow

MEMBER_AUDIENCE = "tether:member"
ISSUER = "tether"
API_KEY_PREFIX = "tk"
KEY_CLAIM = "kid"
KEY_REVOKED = "the API key that issued this token was revoked"
EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9._:@\-]{1,200}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant (API key) or one member of a tenant (member token)."""

    tenant_id: str
    member_id: str | None = None
    # The API key behind the call: the one presented (tenant), or the one that minted the
    # member's token (member). None for what the operator minted.
    key_id: str | None = None

    @property
    def is_member(self) -> bool:
        return self.member_id is not None

    @property
    def actor(self) -> str:
        return f"member:{self.member_id}" if self.member_id else f"tenant:{self.tenant_id}"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


# ---------------------------------------------------------------------------- tenants
def create_tenant(session: Session, *, name: str, return_urls: list[str] | None = None) -> Tenant:
    if not name.strip():
        raise InvalidRequest("tenant name must not be empty")
    for url in return_urls or []:
        if not url.startswith(("https://", "http://")):
            raise InvalidRequest(f"return URL must be absolute http(s): {url!r}")
    tenant = Tenant(id=new_id("ten"), name=name.strip(), return_urls=list(return_urls or []))
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return tenant


# ---------------------------------------------------------------------------- API keys
def create_api_key(
    session: Session, *, tenant_id: str, pepper: str, name: str = ""
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is shown once and never stored."""
    get_tenant(session, tenant_id)
    key_id = new_id("key").split("_", 1)[1]
    secret = new_secret(32)
    key = ApiKey(
        id=key_id,
        tenant_id=tenant_id,
        name=name,
        secret_hash=keyed_hash(pepper, secret, purpose="api-key"),
    )
    session.add(key)
    session.flush()
    return key, f"{API_KEY_PREFIX}_{key_id}_{secret}"


def revoke_api_key(session: Session, *, key_id: str, tenant_id: str | None = None) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or (tenant_id is not None and key.tenant_id != tenant_id):
        raise NotFound(f"no API key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX + "_")


def authenticate_api_key(session: Session, *, token: str, pepper: str) -> Principal:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise AuthenticationRequired("malformed API key")
    key = session.get(ApiKey, parts[1])
    if key is None or not constant_time_equals(
        key.secret_hash, keyed_hash(pepper, parts[2], purpose="api-key")
    ):
        raise AuthenticationRequired("invalid API key")
    if key.revoked_at is not None:
        raise AuthenticationRequired("this API key was revoked")
    _require_live_credential(session, tenant_id=key.tenant_id)
    return Principal(tenant_id=key.tenant_id, key_id=key.id)


# ---------------------------------------------------------------------------- liveness
def require_live(
    session: Session,
    *,
    tenant_id: str,
    member_id: str | None = None,
    key_id: str | None = None,
) -> Tenant:
    """The one check that a tenant (and its member, and the API key that issued a credential)
    is still live; returns the tenant.

    Raises 401 with a code: ``MEMBER_DISABLED`` (the member is gone, disabled or not the
    tenant's), ``TENANT_DISABLED``, or ``API_KEY_REVOKED`` (the issuing key is revoked,
    unknown, or another tenant's).
    """
    if member_id is not None:
        member = session.get(Member, member_id)
        if member is None or member.tenant_id != tenant_id or member.disabled_at is not None:
            raise AuthenticationRequired(
                "this member no longer exists or is disabled", code="MEMBER_DISABLED"
            )
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or tenant.disabled_at is not None:
        raise AuthenticationRequired("this tenant is disabled", code="TENANT_DISABLED")
    if key_id is not None:
        key = session.get(ApiKey, key_id)
        if key is None or key.tenant_id != tenant_id or key.revoked_at is not None:
            raise AuthenticationRequired(KEY_REVOKED, code="API_KEY_REVOKED")
    return tenant


def _require_live_credential(
    session: Session, *, tenant_id: str, member_id: str | None = None, key_id: str | None = None
) -> Tenant:
    """:func:`require_live` for a bearer credential: a failure is a plain 401 (code
    ``UNAUTHENTICATED`` on GraphQL, like any bad credential) with the same detail."""
    try:
        return require_live(session, tenant_id=tenant_id, member_id=member_id, key_id=key_id)
    except AuthenticationRequired as exc:
        raise AuthenticationRequired(exc.detail) from None


# ---------------------------------------------------------------------------- members
def ensure_member(session: Session, *, tenant_id: str, external_id: str) -> tuple[Member, bool]:
    """Create the tenant's member with ``external_id``, or return the existing one.

    Returns ``(member, created)``. Idempotent under concurrency: a racing insert that loses
    on the unique constraint reads the winner's row.
    """
    if not EXTERNAL_ID_RE.match(external_id):
        raise InvalidRequest(
            "externalId must be 1-200 characters of letters, digits and ._:@-",
            errors=[{"field": "externalId", "message": "invalid format"}],
        )
    existing = _member_by_external_id(session, tenant_id, external_id)
    if existing is not None:
        return existing, False
    member = Member(id=new_id("mem"), tenant_id=tenant_id, external_id=external_id)
    try:
        with session.begin_nested():
            session.add(member)
    except IntegrityError:
        winner = _member_by_external_id(session, tenant_id, external_id)
        if winner is None:
            raise
        return winner, False
    return member, True


def _member_by_external_id(session: Session, tenant_id: str, external_id: str) -> Member | None:
    return session.scalar(
        select(Member).where(Member.tenant_id == tenant_id, Member.external_id == external_id)
    )


def get_member(session: Session, *, member_id: str, tenant_id: str) -> Member:
    """The tenant's member; another tenant's member is indistinguishable from none."""
    member = session.get(Member, member_id)
    if member is None or member.tenant_id != tenant_id:
        raise NotFound(f"no member {member_id!r}")
    return member


def list_members(
    session: Session, *, tenant_id: str, limit: int = 50, after: str | None = None
) -> list[Member]:
    query = select(Member).where(Member.tenant_id == tenant_id).order_by(Member.id).limit(limit)
    if after:
        query = query.where(Member.id > after)
    return list(session.scalars(query))


def disable_member(session: Session, *, member_id: str, tenant_id: str) -> Member:
    member = get_member(session, member_id=member_id, tenant_id=tenant_id)
    if member.disabled_at is None:
        member.disabled_at = utcnow()
    return member


# ---------------------------------------------------------------------------- member tokens
def _signing_key(secret_key: str) -> str:
    return keyed_hash(secret_key, "member-token-signing", purpose="jwt")


def issue_member_token(
    session: Session,
    *,
    member_id: str,
    tenant_id: str,
    secret_key: str,
    ttl: int,
    key_id: str | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """Mint a member token. ``key_id`` is the API key minting it (its ``kid`` claim: revoking
    the key stops the token); the operator's tokens (CLI, demo) have none."""
    member = get_member(session, member_id=member_id, tenant_id=tenant_id)
    if member.disabled_at is not None:
        raise Conflict("this member is disabled")
    if key_id is not None:
        require_live(session, tenant_id=tenant_id, key_id=key_id)
    issued = now or utcnow()
    expires = issued + timedelta(seconds=ttl)
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": MEMBER_AUDIENCE,
        "sub": member.id,
        "tid": member.tenant_id,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": new_secret(12),
    }
    if key_id is not None:
        claims[KEY_CLAIM] = key_id
    return IssuedToken(jwt.encode(claims, _signing_key(secret_key), algorithm="HS256"), expires)


def authenticate_member_token(session: Session, *, token: str, secret_key: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            _signing_key(secret_key),
            algorithms=["HS256"],
            audience=MEMBER_AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationRequired("the member token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthenticationRequired("invalid member token") from exc
    member_id, tenant_id = claims["sub"], claims.get("tid")
    key_id = claims.get(KEY_CLAIM)
    if (
        not isinstance(member_id, str)
        or not isinstance(tenant_id, str)
        or not (key_id is None or (isinstance(key_id, str) and key_id))
    ):
        raise AuthenticationRequired("invalid member token")
    _require_live_credential(session, tenant_id=tenant_id, member_id=member_id, key_id=key_id)
    return Principal(tenant_id=tenant_id, member_id=member_id, key_id=key_id)


def authenticate(session: Session, *, token: str, secret_key: str) -> Principal:
    """Authenticate a bearer credential: an API key or a member token."""
    if looks_like_api_key(token):
        return authenticate_api_key(session, token=token, pepper=secret_key)
    return authenticate_member_token(session, token=token, secret_key=secret_key)
