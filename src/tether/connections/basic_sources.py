"""createConnection: BASIC sources, where the member gives their portal credentials.

Per source (``basic_auth`` in the directory entry), tether checks the credentials with the
source before storing anything:

- ``http_basic``: HTTP Basic (RFC 7617) on the source's FHIR API; a ``Patient`` search must
  answer exactly the member's own Patient, which gives the patient id;
- ``password_grant``: the OAuth 2.0 resource-owner password grant (RFC 6749 §4.3) at the
  source's token endpoint, on Authlib's client; the tokens are then handled like OAuth ones.

Wrong credentials give a clear error and store nothing. Accepted ones are sealed with the
vault (bound to the row) and the connection becomes CONNECTED/PENDING in a new grant epoch.
"""

from __future__ import annotations

import json
from datetime import datetime

import httpx

from tether.connections import lifecycle
from tether.connections.grants import start_grant
from tether.connections.queries import connection_for
from tether.connections.sources import fhir_base_url, smart_client
from tether.connections.tokens import store_tokens
from tether.connections.views import ConnectionView, member_connection
from tether.domain import Category, Status
from tether.errors import (
    AccessEnded,
    Conflict,
    InvalidRequest,
    NotFound,
    OAuthProtocolError,
    SourceUnavailable,
    UpstreamError,
)
from tether.identity.principals import MemberPrincipal
from tether.oauth import rfc6749
from tether.runtime import Runtime
from tether.sealed import connection_binding
from tether.store.models import Connection, DataSource

MAX_CREDENTIAL = 500


def _basic_source(source: DataSource | None, source_id: str) -> DataSource:
    if source is None:
        raise NotFound(f"no data source {source_id!r}", code="UNKNOWN_DATA_SOURCE")
    if source.retired:
        raise AccessEnded(f"{source.name} is no longer available", code="ACCESS_ENDED")
    if source.category != Category.BASIC:
        raise Conflict(
            f"{source.name} is a {source.category} source: use getOauthUrl",
            code="WRONG_CATEGORY",
        )
    return source


def _check_http_basic(
    runtime: Runtime, source: DataSource, base: str, username: str, password: str
) -> str:
    """The patient id the credentials open, or a clear error."""
    try:
        with runtime.http_client(source=source.id) as http:
            response = http.get(
                f"{base}/Patient",
                params={"_count": "2"},
                auth=(username, password),
                headers={"Accept": "application/fhir+json"},
            )
    except httpx.HTTPError as exc:
        raise UpstreamError(
            f"the source could not be reached ({type(exc).__name__})", code="SOURCE_UNAVAILABLE"
        ) from None
    if response.status_code in (401, 403):
        raise InvalidRequest("the source did not accept these credentials", code="BAD_CREDENTIALS")
    if response.status_code != 200:
        raise UpstreamError(
            f"the source answered HTTP {response.status_code}", code="SOURCE_UNAVAILABLE"
        )
    try:
        bundle = response.json()
        patients = [
            e["resource"]["id"]
            for e in bundle.get("entry", [])
            if e.get("resource", {}).get("resourceType") == "Patient"
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UpstreamError("the source answered something that is not FHIR") from None
    if len(patients) != 1:
        raise UpstreamError(
            "the source did not identify one patient for these credentials",
            code="PERSON_MATCHING_ERROR",
        )
    return str(patients[0])


def _password_grant(
    runtime: Runtime, source: DataSource, base: str, username: str, password: str
) -> rfc6749.TokenSet:
    try:
        with smart_client(runtime, source) as (client, config, _base):
            return rfc6749.password_grant(client, config, username=username, password=password)
    except OAuthProtocolError as exc:
        if exc.error in ("invalid_grant", "invalid_request"):
            raise InvalidRequest(
                "the source did not accept these credentials", code="BAD_CREDENTIALS"
            ) from None
        raise UpstreamError(f"the source refused: {exc.error}") from None
    except SourceUnavailable as exc:
        raise UpstreamError(str(exc), code="SOURCE_UNAVAILABLE") from None


def create_connection(
    runtime: Runtime,
    *,
    member: MemberPrincipal,
    connection_id: str,
    username: str,
    password: str,
) -> ConnectionView:
    """createConnection(connectionId, username, password) for a BASIC source: the new
    connection, CONNECTED/PENDING (its first sync is queued)."""
    if not username or not password:
        raise InvalidRequest("username and password are required", code="MISSING_CREDENTIALS")
    if len(username) > MAX_CREDENTIAL or len(password) > MAX_CREDENTIAL:
        raise InvalidRequest("username or password is too long")
    with runtime.db.read() as session:
        source = _basic_source(session.get(DataSource, connection_id), connection_id)
        existing = connection_for(session, member_id=member.member_id, connection_id=source.id)
    if existing is not None:
        lifecycle.check(existing, Status.CONNECTED)
    base = fhir_base_url(runtime, source)
    method = (source.settings or {}).get("basic_auth", "http_basic")
    tokens: rfc6749.TokenSet | None = None
    if method == "password_grant":
        tokens = _password_grant(runtime, source, base, username, password)
        if not tokens.patient:
            raise UpstreamError("no patient context in the token response")
        patient = tokens.patient
    else:
        patient = _check_http_basic(runtime, source, base, username, password)
    _store(runtime, member, source, patient, username, password, tokens)
    return member_connection(runtime, member=member, connection_id=source.id)


def _store(
    runtime: Runtime,
    member: MemberPrincipal,
    source: DataSource,
    patient: str,
    username: str,
    password: str,
    tokens: rfc6749.TokenSet | None,
) -> Connection:

    def seal(conn: Connection, now: datetime) -> None:
        conn.credentials = runtime.vault.encrypt(
            json.dumps({"username": username, "password": password}),
            binding=connection_binding(conn.id, "credentials"),
        )
        if tokens is not None:
            store_tokens(runtime, conn, tokens, now=now)

    return start_grant(
        runtime,
        member_id=member.member_id,
        source_id=source.id,
        patient=patient,
        actor=member.actor,
        seal=seal,
        detail={"method": (source.settings or {}).get("basic_auth", "http_basic")},
    )
