"""tether's own signing keys, for ``private_key_jwt`` client authentication (RFC 7523).

Health systems that want asymmetric client authentication (SMART "client-confidential-
asymmetric") are given tether's JWKS URL, ``{public base URL}/.well-known/jwks.json``
(:func:`jwks`); tether signs its client assertions with the private half, sealed by the vault.

Rotation overlaps (:func:`rotate_keys`): the new key is published at once but signs only after
``signing_key_activation_delay`` seconds, so sources that cache the JWKS have fetched it by
then; the key it replaces keeps signing until that moment and stays published for
``signing_key_grace_period`` seconds more. When a ``private_key_jwt`` source needs a key of an
algorithm that has none, :func:`assertion_key` creates one, usable at once, and logs a warning
naming its ``kid`` (the first key of an algorithm has nothing to overlap with).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tether.errors import Conflict, InvalidRequest, NotFound
from tether.logging import get_logger
from tether.oauth import rfc7523
from tether.runtime import Runtime
from tether.sealed import signing_key_binding
from tether.store.models import DataSource, SigningKey

log = get_logger("tether.signing")
DEFAULT_ALG = "RS384"
_AUTO_CREATE = threading.Lock()


@dataclass(frozen=True)
class SigningKeyView:
    kid: str
    alg: str
    created: datetime
    active_from: datetime
    retired_at: datetime | None
    unpublish_at: datetime | None
    state: str  # pending · active · retiring (still signs until retired_at) · retired


def _view(row: SigningKey, now: datetime) -> SigningKeyView:
    if row.active_from > now:
        state = "pending"
    elif row.retired_at is None:
        state = "active"
    elif row.retired_at > now:
        state = "retiring"
    else:
        state = "retired"
    return SigningKeyView(
        kid=row.id,
        alg=row.alg,
        created=row.created_at,
        active_from=row.active_from,
        retired_at=row.retired_at,
        unpublish_at=row.unpublish_at,
        state=state,
    )


def _check_alg(alg: str) -> str:
    if alg not in rfc7523.ALGORITHMS:
        raise InvalidRequest(
            f"signing algorithm must be one of {', '.join(rfc7523.ALGORITHMS)}", field="alg"
        )
    return alg


def _new_key(runtime: Runtime, session: Session, *, alg: str, active_from: datetime) -> SigningKey:
    kid, pem, public = rfc7523.generate_key(alg)
    row = SigningKey(
        id=kid,
        alg=alg,
        public_jwk=public,
        private_key=runtime.vault.encrypt(pem, binding=signing_key_binding(kid)),
        created_at=runtime.clock(),
        active_from=active_from,
    )
    session.add(row)
    return row


def _unretired(session: Session, alg: str) -> list[SigningKey]:
    return list(
        session.scalars(
            select(SigningKey).where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
        )
    )


def _prune(session: Session, now: datetime) -> None:
    """Keys past their grace period are gone for good (no longer published, never used)."""
    for row in session.scalars(select(SigningKey).where(SigningKey.unpublish_at <= now)):
        session.delete(row)


def create_key(runtime: Runtime, *, alg: str = DEFAULT_ALG) -> SigningKeyView:
    """``tether keys signing create``: the first key of ``alg``, published and used at once.
    Refused when ``alg`` already has a key (rotate it instead)."""
    _check_alg(alg)
    now = runtime.clock()
    with runtime.db.write() as session:
        if _unretired(session, alg):
            raise Conflict(
                f"tether already has an {alg} signing key; use `tether keys signing rotate`",
                code="SIGNING_KEY_EXISTS",
            )
        row = _new_key(runtime, session, alg=alg, active_from=now)
        view = _view(row, now)
    log.info("signing key created", kid=view.kid, alg=alg)
    return view


def rotate_keys(runtime: Runtime, *, alg: str | None = None) -> list[SigningKeyView]:
    """``tether keys signing rotate``: a new key for ``alg`` (default: every algorithm that
    has a key), published now and signing after the activation delay; each key it replaces
    signs until then and stays published for the grace period after. Returns the new keys."""
    now = runtime.clock()
    settings = runtime.settings
    activates = now + timedelta(seconds=settings.signing_key_activation_delay)
    unpublish = activates + timedelta(seconds=settings.signing_key_grace_period)
    created = []
    with runtime.db.write() as session:
        _prune(session, now)
        if alg is not None:
            algs = [_check_alg(alg)]
        else:
            algs = sorted(set(session.scalars(select(SigningKey.alg))))
        for name in algs:
            old = _unretired(session, name)
            if not old:
                raise Conflict(
                    f"tether has no {name} signing key to rotate; create one with "
                    "`tether keys signing create`",
                    code="NO_SIGNING_KEY",
                )
            for row in old:
                row.retired_at, row.unpublish_at = activates, unpublish
            created.append(_view(_new_key(runtime, session, alg=name, active_from=activates), now))
        if not created:
            raise Conflict(
                "tether has no signing key to rotate; create one with `tether keys signing create`",
                code="NO_SIGNING_KEY",
            )
    for view in created:
        log.info("signing key rotated", kid=view.kid, alg=view.alg, active_from=view.active_from)
    return created


def list_keys(runtime: Runtime) -> list[SigningKeyView]:
    """Every stored key, newest first, with its state now (never the private key)."""
    now = runtime.clock()
    with runtime.db.read() as session:
        rows = session.scalars(select(SigningKey).order_by(SigningKey.active_from.desc()))
        return [_view(row, now) for row in rows]


def jwks(runtime: Runtime, *, alg: str | None = None) -> dict[str, Any]:
    """The public JWK Set (RFC 7517 §5): every key not past its grace period (of ``alg``
    only, for a source that wants a set of its own)."""
    now = runtime.clock()
    query = select(SigningKey).where(
        or_(SigningKey.unpublish_at.is_(None), SigningKey.unpublish_at > now)
    )
    if alg is not None:
        query = query.where(SigningKey.alg == alg)
    with runtime.db.read() as session:
        rows = session.scalars(query.order_by(SigningKey.active_from.desc(), SigningKey.id))
        return {"keys": [dict(row.public_jwk) for row in rows]}


def source_jwks(runtime: Runtime, source_id: str) -> dict[str, Any]:
    """The JWK Set of one ``private_key_jwt`` source: the keys of its algorithm only (some
    health systems refuse a set with key types they do not use). NotFound for any other."""
    with runtime.db.read() as session:
        source = session.get(DataSource, source_id)
        oauth = (source.settings or {}).get("oauth") if source is not None else None
    if not oauth or oauth.get("token_endpoint_auth_method") != rfc7523.METHOD:
        raise NotFound(f"no private_key_jwt data source {source_id!r}", code="UNKNOWN_DATA_SOURCE")
    return jwks(runtime, alg=oauth.get("signing_alg") or DEFAULT_ALG)


def _signing_row(session: Session, alg: str, now: datetime) -> SigningKey | None:
    return session.scalars(
        select(SigningKey)
        .where(
            SigningKey.alg == alg,
            SigningKey.active_from <= now,
            or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now),
        )
        .order_by(SigningKey.active_from.desc(), SigningKey.id)
        .limit(1)
    ).first()


def assertion_key(runtime: Runtime, *, alg: str) -> rfc7523.ClientAssertionKey:
    """The key to sign a client assertion with now; created (and logged) when ``alg`` has
    none yet."""
    _check_alg(alg)
    now = runtime.clock()
    with runtime.db.read() as session:
        row = _signing_row(session, alg, now)
        found = (row.id, row.private_key) if row is not None else None
    if found is None:
        with _AUTO_CREATE, runtime.db.write() as session:
            row = _signing_row(session, alg, now)
            if row is None:
                row = _new_key(runtime, session, alg=alg, active_from=now)
                log.warning(
                    "no signing key for a private_key_jwt source: created one",
                    kid=row.id,
                    alg=alg,
                    jwks_url=runtime.settings.jwks_url,
                )
            found = (row.id, row.private_key)
    kid, sealed = found
    pem = runtime.vault.decrypt(sealed, binding=signing_key_binding(kid))
    return rfc7523.ClientAssertionKey(kid=kid, alg=alg, private_pem=pem)
