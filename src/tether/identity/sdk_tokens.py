"""Identity for the health SDK's client: clientKey, getToken and refresh.

- A **clientKey** is base64 of a JSON object, ``{"env": "tether", "tenant": "<tenant id>"}``.
  tether reads only ``tenant``; the SDK itself reads only ``env``.
- **getToken** exchanges a tether member token (``Authorization``, raw) and the tenant's
  clientKey for the SDK's token set: a fresh member token as the access token (a three-part
  HS256 JWT with a numeric ``exp``, so the SDK's authed calls are ordinary member calls), an
  id token (HS256, its own key and audience, ``sub`` the member, ``tid`` the tenant), and an
  opaque refresh token of which only the SHA-256 is stored, bound to the member, the tenant
  and the API key that minted the member token (its ``kid``; none for the operator's tokens).
  It lives ``TETHER_SDK_REFRESH_TTL`` seconds.
- **refresh** exchanges that refresh token (and the same clientKey) for a new access token
  (carrying the same ``kid``) and id token; the refresh token is not rotated and keeps its
  expiry. A disabled member or tenant, a revoked issuing API key, a revoked or expired refresh
  token, or another tenant's clientKey stops it (:func:`tether.identity.liveness.require_live`).

Refresh tokens past their expiry are deleted by the ``sdk-refresh-tokens`` sweep
(:func:`purge_expired_refresh_tokens`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tether.errors import AuthenticationRequired, InvalidRequest
from tether.identity.credentials import authenticate_member
from tether.identity.liveness import require_live
from tether.identity.member_tokens import ISSUER, issue_member_token
from tether.ids import keyed_hash, new_secret, sha256_hex
from tether.runtime import Runtime
from tether.store.models import SdkRefreshToken

CLIENT_KEY_ENV = "tether"
ID_TOKEN_AUDIENCE = "tether:sdk-id"
REFRESH_TOKEN_PREFIX = "trt_"
MAX_CLIENT_KEY_LENGTH = 2000


@dataclass(frozen=True)
class ClientKey:
    env: str
    tenant_id: str


@dataclass(frozen=True)
class SdkTokens:
    access_token: str
    id_token: str
    expires_at: datetime
    refresh_token: str | None = None  # only getToken hands one out


def client_key_for(tenant_id: str, *, env: str = CLIENT_KEY_ENV) -> str:
    """The clientKey an app passes to the SDK to reach this tenant on tether."""
    payload = json.dumps({"env": env, "tenant": tenant_id}, separators=(",", ":"))
    return base64.b64encode(payload.encode()).decode()


def parse_client_key(value: str | None) -> ClientKey:
    """Decode a clientKey (standard or URL-safe base64, padding optional)."""
    if not value or not value.strip():
        raise AuthenticationRequired("send the tenant's clientKey", code="CLIENT_KEY_MISSING")
    raw = value.strip()
    if len(raw) > MAX_CLIENT_KEY_LENGTH:
        raise InvalidRequest("this clientKey is not valid", code="CLIENT_KEY_INVALID")
    padded = raw + "=" * (-len(raw) % 4)
    try:
        decoded = json.loads(base64.b64decode(padded.replace("-", "+").replace("_", "/")))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("this clientKey is not valid", code="CLIENT_KEY_INVALID") from exc
    if not isinstance(decoded, dict):
        raise InvalidRequest("this clientKey is not valid", code="CLIENT_KEY_INVALID")
    tenant, env = decoded.get("tenant"), decoded.get("env", "")
    if not isinstance(tenant, str) or not tenant or not isinstance(env, str):
        raise InvalidRequest("this clientKey names no tether tenant", code="CLIENT_KEY_INVALID")
    return ClientKey(env=env, tenant_id=tenant)


def _require_same_tenant(client_key: ClientKey, tenant_id: str) -> None:
    if client_key.tenant_id != tenant_id:
        raise AuthenticationRequired(
            "this clientKey belongs to another tenant", code="CLIENT_KEY_MISMATCH"
        )


def _id_token_key(secret_key: str) -> str:
    return keyed_hash(secret_key, "sdk-id-token-signing", purpose="jwt")


def issue_id_token(
    *, member_id: str, tenant_id: str, secret_key: str, issued: datetime, expires: datetime
) -> str:
    claims = {
        "iss": ISSUER,
        "aud": ID_TOKEN_AUDIENCE,
        "sub": member_id,
        "tid": tenant_id,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
    }
    return jwt.encode(claims, _id_token_key(secret_key), algorithm="HS256")


def verify_id_token(token: str, *, secret_key: str) -> dict[str, object]:
    """The id token's claims (for tenants' servers and tests); raises on any defect."""
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            _id_token_key(secret_key),
            algorithms=["HS256"],
            audience=ID_TOKEN_AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.InvalidTokenError as exc:
        raise AuthenticationRequired("invalid id token") from exc
    return claims


def _token_set(
    session: Session,
    runtime: Runtime,
    *,
    member_id: str,
    tenant_id: str,
    key_id: str | None,
    now: datetime,
) -> tuple[str, str, datetime]:
    issued = issue_member_token(
        session,
        member_id=member_id,
        tenant_id=tenant_id,
        secret_key=runtime.secret_key,
        ttl=runtime.settings.member_token_ttl,
        key_id=key_id,
        now=now,
    )
    id_token = issue_id_token(
        member_id=member_id,
        tenant_id=tenant_id,
        secret_key=runtime.secret_key,
        issued=now,
        expires=issued.expires_at,
    )
    return issued.token, id_token, issued.expires_at


def get_token(runtime: Runtime, *, member_token: str | None, client_key: str | None) -> SdkTokens:
    """getToken: a tether member token plus the tenant's clientKey → the SDK's token set."""
    token = (member_token or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise AuthenticationRequired(
            "send a tether member token in the Authorization header", code="TOKEN_MISSING"
        )
    key = parse_client_key(client_key)
    principal = authenticate_member(runtime, token)  # 403 for an API key
    _require_same_tenant(key, principal.tenant_id)
    now = runtime.clock()
    secret = new_secret(32)
    with runtime.db.write() as session:
        access, id_token, expires = _token_set(
            session,
            runtime,
            member_id=principal.member_id,
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            now=now,
        )
        session.add(
            SdkRefreshToken(
                token_hash=sha256_hex(REFRESH_TOKEN_PREFIX + secret),
                tenant_id=principal.tenant_id,
                member_id=principal.member_id,
                api_key_id=principal.key_id,
                created_at=now,
                expires_at=now + timedelta(seconds=runtime.settings.sdk_refresh_ttl),
            )
        )
    return SdkTokens(access, id_token, expires, refresh_token=REFRESH_TOKEN_PREFIX + secret)


_INVALID = "this refresh token is not valid; authenticate again"


def refresh(runtime: Runtime, *, refresh_token: str | None, client_key: str | None) -> SdkTokens:
    """refresh: a new access token and id token; the refresh token stays as it is."""
    token = (refresh_token or "").strip()
    if not token:
        raise AuthenticationRequired(
            "send the refresh token in the refresh_token header", code="REFRESH_TOKEN_MISSING"
        )
    key = parse_client_key(client_key)
    now = runtime.clock()
    with runtime.db.write() as session:
        row = session.scalar(
            select(SdkRefreshToken).where(SdkRefreshToken.token_hash == sha256_hex(token))
        )
        if row is None or row.revoked_at is not None:
            raise AuthenticationRequired(_INVALID, code="REFRESH_TOKEN_INVALID")
        if row.expires_at <= now:
            raise AuthenticationRequired(
                "this refresh token has expired; authenticate again", code="REFRESH_TOKEN_EXPIRED"
            )
        _require_same_tenant(key, row.tenant_id)
        # MEMBER_DISABLED, TENANT_DISABLED or API_KEY_REVOKED.
        require_live(
            session, tenant_id=row.tenant_id, member_id=row.member_id, key_id=row.api_key_id
        )
        row.last_used_at = now
        access, id_token, expires = _token_set(
            session,
            runtime,
            member_id=row.member_id,
            tenant_id=row.tenant_id,
            key_id=row.api_key_id,
            now=now,
        )
    return SdkTokens(access, id_token, expires)


def revoke_refresh_tokens(session: Session, *, member_id: str, now: datetime) -> int:
    """Revoke every live refresh token of a member (sign-out everywhere); returns how many."""
    result = session.execute(
        update(SdkRefreshToken)
        .where(SdkRefreshToken.member_id == member_id, SdkRefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def purge_expired_refresh_tokens(runtime: Runtime, *, limit: int = 5000) -> int:
    """Delete up to ``limit`` refresh tokens that have expired (the periodic sweep); returns
    how many. Batched, so a large backlog never holds the write lock for long."""
    now = runtime.clock()
    with runtime.db.write() as session:
        expired = (
            select(SdkRefreshToken.token_hash)
            .where(SdkRefreshToken.expires_at <= now)
            .limit(limit)
            .scalar_subquery()
        )
        result = session.execute(
            delete(SdkRefreshToken).where(SdkRefreshToken.token_hash.in_(expired))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
