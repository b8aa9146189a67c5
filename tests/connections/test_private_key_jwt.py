"""private_key_jwt end to end: tether's signing keys, its JWKS, and the sandbox source that
requires them (sandbox-specialty, ES384 in the bundled directory)."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from sqlalchemy import select

from tests.conftest import MemberCtx
from tests.sync.helpers import connected, reload, stored
from tether import signing
from tether.connections.tokens import RefreshResult, refresh_connection
from tether.errors import Conflict
from tether.oauth import rfc7523
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.sealed import signing_key_binding
from tether.store.models import AuditEvent, Connection, OAuthAttempt, SigningKey
from tether.sync.run import run_sync
from tether.testing.flow import connect

SPECIALTY = "sandbox-specialty"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Recorder(httpx.BaseTransport):
    """Real HTTP underneath; keeps the form bodies sent to OAuth endpoints."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.forms: list[tuple[str, dict[str, str], httpx.Headers]] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "/oauth/" in request.url.path and request.method == "POST":
            body = request.read().decode()
            form = {k: v[0] for k, v in parse_qs(body).items()}
            with self.lock:
                self.forms.append((str(request.url), form, request.headers))
        return self.inner.handle_request(request)


@pytest.fixture
def recorder(runtime: Runtime) -> Recorder:
    runtime.transport = recorder = Recorder()
    return recorder


def _jwks(client: httpx.Client) -> dict[str, object]:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    body: dict[str, object] = response.json()
    return body


def _verify(assertion: str, jwks: dict[str, object], token_endpoint: str) -> dict[str, object]:
    """Check an assertion with PyJWT, a library independent of Authlib and joserfc."""
    header = jwt.get_unverified_header(assertion)
    [public] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]  # type: ignore[attr-defined,index]
    claims: dict[str, object] = jwt.decode(
        assertion,
        jwt.PyJWK(public).key,
        algorithms=["RS384", "ES384"],
        audience=token_endpoint,
        issuer="tether",
        options={"require": ["exp", "iat", "jti", "sub"]},
    )
    assert claims["sub"] == "tether"
    assert 0 < int(claims["exp"]) - int(claims["iat"]) <= 300  # type: ignore[call-overload]
    return claims


def test_connect_sync_refresh_and_revoke_with_assertions(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
    recorder: Recorder,
) -> None:
    assert _jwks(client) == {"keys": []}  # no key until a private_key_jwt source needs one
    conn = connected(client, member, runtime, SPECIALTY, "specialty-1")
    [key] = _jwks(client)["keys"]  # type: ignore[misc]
    assert key["alg"] == "ES384" and key["use"] == "sig" and "d" not in key  # created on demand

    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    counts = stored(runtime, conn.id)
    assert counts["Patient"] == 1 and sum(counts.values()) > 10
    assert reload(runtime, conn.id).sync_status == "RETRIEVED"

    sandbox.expire_tokens(SPECIALTY)
    assert refresh_connection(runtime, connection_pk=conn.id, stale_sealed=None) == (
        RefreshResult.REFRESHED
    )
    assert client.post(f"/v1/connections/{SPECIALTY}/disconnect", headers=member.headers).is_success
    with runtime.db.read() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert last is not None and last.detail == {"outcome": "revoked"}

    counters = sandbox.counters(SPECIALTY)
    assert (counters.code_exchanges, counters.refreshes, counters.revocations) == (1, 1, 2)
    token_endpoint = f"{runtime.settings.sandbox_url}/{SPECIALTY}/oauth/token"
    sent = [(url, form, headers) for url, form, headers in recorder.forms]
    kinds = [form.get("grant_type") or url.rsplit("/", 1)[-1] for url, form, _ in sent]
    # Each new refresh token is introspected (RFC 7662) for when the grant ends.
    assert kinds == [
        "authorization_code",
        "introspect",
        "refresh_token",
        "introspect",
        "revoke",
        "revoke",
    ]
    jwks = _jwks(client)
    jtis = set()
    for _url, form, headers in sent:
        assert "authorization" not in headers and "client_secret" not in form
        assert form["client_assertion_type"] == ASSERTION_TYPE
        claims = _verify(form["client_assertion"], jwks, token_endpoint)  # aud: token endpoint
        jtis.add(claims["jti"])
    assert len(jtis) == len(sent)  # a fresh jti every time

    # The private key is sealed, never stored plain.
    with runtime.db.read() as session:
        row = session.scalars(select(SigningKey)).one()
    assert row.private_key.startswith("v1.") and "PRIVATE KEY" not in row.private_key
    pem = runtime.vault.decrypt(row.private_key, binding=signing_key_binding(row.id))
    assert "PRIVATE KEY" in pem


def test_a_wrong_key_is_invalid_client_and_stores_nothing(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    published = signing.create_key(runtime, alg="ES384")
    _, other_pem, _ = rfc7523.generate_key("ES384")
    with runtime.db.write() as session:  # the kid the source knows, signed by another key
        row = session.get(SigningKey, published.kid)
        assert row is not None
        row.private_key = runtime.vault.encrypt(
            other_pem, binding=signing_key_binding(published.kid)
        )
    result = connect(client, member.headers, SPECIALTY, patient="specialty-1")
    assert result.status_code == "invalid_client"
    with runtime.db.read() as session:
        assert session.scalars(select(Connection)).all() == []
        attempt = session.scalars(select(OAuthAttempt)).one()
    assert attempt.outcome == "invalid_client"


def test_rotation_publishes_first_signs_later_and_keeps_the_old_key(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
    recorder: Recorder,
) -> None:
    settings = runtime.settings
    start = runtime.clock()
    runtime.clock = lambda: start
    first = signing.create_key(runtime, alg="ES384")
    with pytest.raises(Conflict):
        signing.create_key(runtime, alg="ES384")
    conn = connected(client, member, runtime, SPECIALTY, "specialty-1")

    [new] = signing.rotate_keys(runtime)
    assert new.state == "pending"
    assert new.active_from == start + timedelta(seconds=settings.signing_key_activation_delay)
    published = {k["kid"] for k in _jwks(client)["keys"]}  # type: ignore[attr-defined]
    assert published == {first.kid, new.kid}  # the new key is published at once...
    assert signing.assertion_key(runtime, alg="ES384").kid == first.kid  # ...but not used yet

    sandbox.expire_tokens(SPECIALTY)
    assert refresh_connection(runtime, connection_pk=conn.id, stale_sealed=None) == (
        RefreshResult.REFRESHED
    )
    after_delay = new.active_from + timedelta(seconds=1)
    runtime.clock = lambda: after_delay
    assert signing.assertion_key(runtime, alg="ES384").kid == new.kid
    states = {v.kid: v.state for v in signing.list_keys(runtime)}
    assert states == {first.kid: "retired", new.kid: "active"}
    published = {k["kid"] for k in _jwks(client)["keys"]}  # type: ignore[attr-defined]
    assert published == {first.kid, new.kid}  # the old key stays during the grace period
    sandbox.expire_tokens(SPECIALTY)
    assert refresh_connection(runtime, connection_pk=conn.id, stale_sealed=None) == (
        RefreshResult.REFRESHED
    )
    kids = [
        jwt.get_unverified_header(form["client_assertion"])["kid"]
        for _, form, _ in recorder.forms
        if "grant_type" in form  # the token endpoint's (introspection follows each)
    ]
    assert kids == [first.kid, first.kid, new.kid]  # exchange, refresh, refresh after the delay

    after_grace = after_delay + timedelta(seconds=settings.signing_key_grace_period)
    runtime.clock = lambda: after_grace
    published = {k["kid"] for k in _jwks(client)["keys"]}  # type: ignore[attr-defined]
    assert published == {new.kid}
    signing.rotate_keys(runtime, alg="ES384")  # prunes the key past its grace period
    with runtime.db.read() as session:
        assert session.get(SigningKey, first.kid) is None


def test_rotate_without_a_key_is_a_clear_error(runtime: Runtime) -> None:
    with pytest.raises(Conflict) as refused:
        signing.rotate_keys(runtime)
    assert refused.value.code == "NO_SIGNING_KEY"


def test_a_source_gets_a_key_set_of_its_own_algorithm(
    client: httpx.Client, runtime: Runtime
) -> None:
    signing.create_key(runtime, alg="RS384")
    signing.create_key(runtime, alg="ES384")
    everything = client.get("/.well-known/jwks.json").json()["keys"]
    assert {k["alg"] for k in everything} == {"RS384", "ES384"}
    own = client.get(f"/.well-known/jwks/{SPECIALTY}.json")
    assert own.status_code == 200
    assert own.headers["content-type"] == "application/jwk-set+json"
    assert {k["alg"] for k in own.json()["keys"]} == {"ES384"}
    assert all("d" not in k for k in own.json()["keys"])  # public halves only
    # Not a private_key_jwt source, or none at all: a problem document, no keys.
    for other in ("sandbox-clinic", "no-such-source"):
        missing = client.get(f"/.well-known/jwks/{other}.json")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
