"""Member tokens: short-lived HS256 JWTs a tenant mints for one of its members.

Claims: ``iss`` tether, ``aud`` ``tether:member``, ``sub`` the member, ``tid`` the tenant,
``exp`` minutes away, a ``jti``, and ``kid`` the API key that minted it when one did. Every
call verifies the signature, expiry, audience and issuer, and that the member, the tenant and
the minting key are still live (:func:`tether.identity.liveness.require_live`). Tokens minted
by the operator (``tether members token``, ``tether demo``) carry no ``kid`` and stay valid
until they expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from sqlalchemy.orm import Session

from tether.accounts.members import get_member
from tether.errors import AuthenticationRequired, Conflict
from tether.identity.liveness import require_live, require_live_credential
from tether.identity.principals import MemberPrincipal
from tether.ids import keyed_hash, new_secret
from tether.runtime import Runtime
from tether.store.models import utcnow

MEMBER_AUDIENCE = "tether:member"
ISSUER = "tether"
KEY_CLAIM = "kid"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


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
    """Mint a member token in the caller's unit of work. ``key_id`` is the API key minting it
    (its ``kid`` claim: revoking the key stops the token); the operator's tokens have none."""
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


def mint_member_token(
    runtime: Runtime, *, tenant_id: str, member_id: str, key_id: str | None = None
) -> IssuedToken:
    """A member token for the tenant's member, living ``TETHER_MEMBER_TOKEN_TTL`` seconds;
    ``key_id`` is the API key asking (None: the operator)."""
    with runtime.db.read() as session:
        return issue_member_token(
            session,
            member_id=member_id,
            tenant_id=tenant_id,
            secret_key=runtime.secret_key,
            ttl=runtime.settings.member_token_ttl,
            key_id=key_id,
            now=runtime.clock(),
        )


def verify_member_token(session: Session, *, token: str, secret_key: str) -> MemberPrincipal:
    """The member behind a member token, or 401."""
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
    require_live_credential(session, tenant_id=tenant_id, member_id=member_id, key_id=key_id)
    return MemberPrincipal(tenant_id=tenant_id, member_id=member_id, key_id=key_id)
