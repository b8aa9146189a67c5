"""Sources as they are: a server that bends the standard, met with a directory profile.

``sandbox-regional`` answers only ``application/json+fhir``, refuses ``aud``, refuses an
Observation search without ``category``, ends grants after 30 days and lets the member untick
resource types. The bundled directory entry says so; without it each difference fails the way
docs/directory.md documents.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import MemberCtx
from tests.sync.helpers import codes, connected, reload, stored
from tether.client import ConnectionManager
from tether.connections.expiring import notify_expiring
from tether.connections.retirement import import_directory
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.sandbox.data.records import Window
from tether.store.models import AuditEvent, Connection, Event, SyncRun
from tether.sync.run import run_sync
from tether.testing.flow import FlowResult, connect, get_redirect_url

REGIONAL = "sandbox-regional"
CLINIC = "sandbox-clinic"
EVERYTHING = Window(None, False, None, False)


def _source_counts(sandbox: Sandbox, source: str, patient: str) -> dict[str, int]:
    record = sandbox.catalog.record(source, patient)
    return {t: record.count(t, EVERYTHING) for t in record.types()}


def _audit(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.db.read() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def _import(runtime: Runtime, tmp_path: Path, text: str) -> None:
    """Import a directory file of ``text`` (its entries replace the bundled ones)."""
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    import_directory(runtime, path)


REGIONAL_PLAIN = """
- id: sandbox-regional
  name: Sandbox Regional Health
  type: CLINICAL
  fhir_base_url: "{sandbox}/sandbox-regional/fhir"
  oauth: {client_id: tether, client_secret: sandbox-secret}
"""


def test_the_regional_source_connects_and_syncs_everything_with_its_profile(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    conn = connected(client, member, runtime, REGIONAL, "regional-1")
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED", report and report.errors
    expected = _source_counts(sandbox, REGIONAL, "regional-1")
    got = stored(runtime, conn.id)
    # Every searched type whole (Observations through one search per category), and the
    # Practitioners the record refers to, read by id.
    assert got == expected
    assert got["Observation"] == 272 and got["Practitioner"] > 1
    runs = _runs(runtime, conn.id)
    # 12 types, one search each but Observation with four, plus one _id search that brings
    # every Practitioner.
    assert runs[-1].requests == 11 + 4 + 1


def _runs(runtime: Runtime, pk: int) -> list[SyncRun]:
    with runtime.db.read() as session:
        return list(
            session.scalars(select(SyncRun).where(SyncRun.connection_id == pk).order_by(SyncRun.id))
        )


def test_without_its_profile_each_difference_fails_as_documented(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    # 1. aud sent to a server that refuses it: the source sends the member back with
    #    invalid_request, and nothing is connected.
    _import(runtime, tmp_path, REGIONAL_PLAIN)
    url = get_redirect_url(client, member.headers, REGIONAL)
    with httpx.Client() as browser:
        authorize = browser.get(url, follow_redirects=False).headers["location"]
        refused = browser.get(authorize, follow_redirects=False)  # no consent page at all
        back = refused.headers["location"]
        assert parse_qs(urlsplit(back).query)["error"] == ["invalid_request"]
        finished = browser.get(back, follow_redirects=False)
    assert FlowResult(back, finished, url).status_code == "invalid_request"
    with runtime.db.read() as session:
        assert session.scalar(select(Connection)) is None

    # 2. application/fhir+json asked of a server that answers only application/json+fhir:
    #    every type is refused with 406.
    _import(runtime, tmp_path, REGIONAL_PLAIN + "  send_aud: false\n")
    conn = connected(client, member, runtime, REGIONAL, "regional-1")
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "ERROR"
    conn = reload(runtime, conn.id)
    assert codes(conn) == ["INVALID_RESPONSE"]
    assert "406" in conn.sync_errors[0]["text"]

    # 3. The right Accept but no category: Observation alone fails, with the server's reason.
    _import(
        runtime,
        tmp_path,
        REGIONAL_PLAIN + "  send_aud: false\n  fhir_accept: application/json+fhir\n",
    )
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED"
    conn = reload(runtime, conn.id)
    assert codes(conn) == ["PARTIAL_RETRIEVAL", "INVALID_RESPONSE"]
    assert conn.sync_errors[0]["text"].endswith("not retrieved: Observation")
    assert "must name a category" in conn.sync_errors[1]["text"]
    assert "Observation" not in stored(runtime, conn.id)


def test_the_authorization_request_follows_the_profile(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    _import(
        runtime,
        tmp_path,
        """
- id: clinic-extra
  name: Clinic With Extras
  type: CLINICAL
  fhir_base_url: "{sandbox}/sandbox-clinic/fhir"
  oauth:
    client_id: tether
    client_secret: sandbox-secret
    scopes: launch/patient openid fhirUser offline_access patient/*.read user/*.read
  extra_authorize_params: {prompt: login}
""",
    )
    url = get_redirect_url(client, member.headers, "clinic-extra")
    launched = client.get(url, follow_redirects=False)
    assert launched.status_code == 302
    query = parse_qs(urlsplit(launched.headers["location"]).query)
    assert query["prompt"] == ["login"]
    assert query["aud"] == [f"{runtime.settings.sandbox_url}/sandbox-clinic/fhir"]
    # user/*.read is not among the source's scopes_supported: dropped, and the audit says so.
    assert query["scope"] == ["launch/patient openid fhirUser offline_access patient/*.read"]
    (dropped,) = _audit(runtime, "oauth.scopes_dropped")
    assert dropped.member_id == member.member_id and dropped.data_source_id == "clinic-extra"
    assert dropped.detail["dropped"] == ["user/*.read"]

    regional = get_redirect_url(client, member.headers, REGIONAL)
    query = parse_qs(urlsplit(client.get(regional).headers["location"]).query)
    assert "aud" not in query


def test_a_narrower_grant_is_recorded_shown_and_not_an_error(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    result = connect(
        client,
        member.headers,
        REGIONAL,
        patient="regional-1",
        withhold=("Immunization", "Procedure"),
    )
    assert result.status_code == "success"
    listed = client.get(f"/v1/connections/{REGIONAL}", headers=member.headers).json()
    assert listed["notShared"] == ["Immunization", "Procedure"]
    (authorized,) = _audit(runtime, "connection.authorized")
    assert authorized.detail["not_shared"] == ["Immunization", "Procedure"]
    graphql = client.post(
        "/graphql",
        json={"query": "{ getMemberConnections { id notShared authorizationExpires } }"},
        headers=member.headers,
    ).json()
    (item,) = graphql["data"]["getMemberConnections"]
    assert item["notShared"] == ["Immunization", "Procedure"]
    with ConnectionManager(str(client.base_url), member.token) as sdk:
        seen = sdk.get_connection(REGIONAL)
    assert seen.not_shared == ("Immunization", "Procedure")
    assert seen.authorization_expires is not None
    assert seen.authorization_expires.isoformat()[:16] == item["authorizationExpires"][:16]

    with runtime.db.read() as session:
        conn = session.scalars(select(Connection)).one()
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED" and report.errors == []
    got = stored(runtime, conn.id)
    assert "Immunization" not in got and "Procedure" not in got
    # What was shared came whole; Practitioners were shared (the member left them ticked).
    expected = _source_counts(sandbox, REGIONAL, "regional-1")
    assert got == {t: n for t, n in expected.items() if t not in ("Immunization", "Procedure")}


def test_a_fixed_grant_shows_when_it_ends_and_warns_once_before(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    before = runtime.clock()
    conn = connected(client, member, runtime, REGIONAL, "regional-1")
    ends = conn.authorization_expires_at
    assert ends is not None
    assert abs(ends - (before + timedelta(days=30))) < timedelta(minutes=1)
    listed = client.get(f"/v1/connections/{REGIONAL}", headers=member.headers).json()
    assert listed["authorizationExpires"].startswith(ends.strftime("%Y-%m-%dT%H:%M"))

    # A refresh does not extend a fixed grant: the source says less time is left, not more.
    sandbox.expire_tokens(REGIONAL)
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED"
    assert sandbox.counters(REGIONAL).refreshes == 1
    refreshed = reload(runtime, conn.id).authorization_expires_at
    assert refreshed is not None and abs(refreshed - ends) < timedelta(seconds=5)

    # Outside the notice period: no event. Inside it: one, once per grant.
    assert notify_expiring(runtime) == 0
    with runtime.db.write() as session:
        row = session.get(Connection, conn.id)
        assert row is not None
        row.authorization_expires_at = runtime.clock() + timedelta(days=5)
    assert notify_expiring(runtime) == 1
    assert notify_expiring(runtime) == 0
    with runtime.db.read() as session:
        (event,) = session.scalars(select(Event).where(Event.type == "connection.expiring"))
    assert event.data["connectionId"] == REGIONAL
    assert event.data["authorizationExpires"].startswith(
        (runtime.clock() + timedelta(days=5)).strftime("%Y-%m-%d")
    )
    (audited,) = _audit(runtime, "connection.expiring")
    assert audited.member_id == member.member_id

    # A new grant (reconnecting) is noticed again when it too nears its end.
    conn = connected(client, member, runtime, REGIONAL, "regional-1")
    with runtime.db.write() as session:
        row = session.get(Connection, conn.id)
        assert row is not None
        row.authorization_expires_at = runtime.clock() + timedelta(days=1)
    assert notify_expiring(runtime) == 1


def test_the_directory_can_say_how_long_a_grant_lasts(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    _import(
        runtime,
        tmp_path,
        """
- id: sandbox-clinic
  name: Sandbox Clinic
  type: CLINICAL
  fhir_base_url: "{sandbox}/sandbox-clinic/fhir"
  oauth: {client_id: tether, client_secret: sandbox-secret}
  authorization_lifetime: 7776000
""",
    )
    before = runtime.clock()
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    assert conn.authorization_expires_at is not None
    assert abs(conn.authorization_expires_at - (before + timedelta(days=90))) < timedelta(minutes=1)
    # Disconnecting ends the grant: nothing left to expire.
    client.post(f"/v1/connections/{CLINIC}/disconnect", headers=member.headers).raise_for_status()
    assert reload(runtime, conn.id).authorization_expires_at is None
    listed = client.get(f"/v1/connections/{CLINIC}", headers=member.headers).json()
    assert listed["authorizationExpires"] is None


def test_the_id_token_is_verified_and_its_fhir_user_kept(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
) -> None:
    connected(client, member, runtime, CLINIC, "clinic-1")
    (authorized,) = _audit(runtime, "connection.authorized")
    assert authorized.detail["fhir_user"] == (
        f"{runtime.settings.sandbox_url}/sandbox-clinic/fhir/Patient/clinic-1"
    )


def test_an_id_token_signed_by_someone_else_stores_nothing(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    sandbox.set_knobs(CLINIC, {"forge_id_token": True})
    result = connect(client, member.headers, CLINIC, patient="clinic-1")
    assert result.status_code == "invalid_token_response"
    with runtime.db.read() as session:
        assert session.scalar(select(Connection)) is None
    assert _audit(runtime, "connection.authorized") == []
    assert sandbox.counters(CLINIC).code_exchanges == 1


def _clinic_2_synced(
    client: httpx.Client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> tuple[Connection, int]:
    """clinic-2 connected and synced once: the connection, and the Practitioners it holds
    (every one its record refers to)."""
    conn = connected(client, member, runtime, CLINIC, "clinic-2")
    run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    practitioners = stored(runtime, conn.id)["Practitioner"]
    assert practitioners == _source_counts(sandbox, CLINIC, "clinic-2")["Practitioner"]
    return conn, practitioners


def _add_referring(sandbox: Sandbox, rid: str, performers: list[dict[str, str]]) -> None:
    """A new Observation of clinic-2 at the clinic, performed by ``performers``."""
    observation = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"text": "note"},
        "subject": {"reference": "Patient/clinic-2"},
        "performer": performers,
    }
    sandbox.add(CLINIC, "clinic-2", [observation])


def test_referenced_resources_missing_ones_and_other_servers(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    conn, practitioners = _clinic_2_synced(client, member, runtime, sandbox)
    _add_referring(
        sandbox,
        "obs-referring",
        [
            {"reference": "Practitioner/ghost"},
            {"reference": "https://elsewhere.invalid/fhir/Organization/org-9"},
        ],
    )
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED" and report.errors == []
    audited = _audit(runtime, "sync.retrieved")
    assert audited[-1].detail["references"] == {"fetched": 0, "missing": 1, "offsite": 1}
    # The Practitioners already held were not read again: one read, for the missing one.
    assert _runs(runtime, conn.id)[-1].requests == 12 + 1
    assert stored(runtime, conn.id)["Practitioner"] == practitioners
    # Stored like the rest: the FHIR API serves them.
    bundle = client.get(
        f"/v1/members/{member.member_id}/fhir/Practitioner", headers=member.tenant.headers
    ).json()
    assert len(bundle["entry"]) == practitioners
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Practitioner"}


def test_referenced_resources_are_searched_by_id_and_read_when_not_found(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    """Several of one type: one ``_id`` search; what it does not bring back is read by id."""
    conn, practitioners = _clinic_2_synced(client, member, runtime, sandbox)
    ghosts = [{"reference": f"Practitioner/ghost-{n}"} for n in range(3)]
    _add_referring(sandbox, "obs-ghosts", ghosts)
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert report is not None and report.status == "RETRIEVED" and report.errors == []
    audited = _audit(runtime, "sync.retrieved")
    assert audited[-1].detail["references"] == {"fetched": 0, "missing": 3, "offsite": 0}
    # 12 searches, one _id search that found none of the three, then three reads (404).
    assert _runs(runtime, conn.id)[-1].requests == 12 + 1 + 3
    assert stored(runtime, conn.id)["Practitioner"] == practitioners


def test_a_source_that_refuses_id_searches_gets_reads_by_id(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    sandbox.set_knobs(CLINIC, {"refuse_id_search": True})
    try:
        report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    finally:
        sandbox.reset(CLINIC)
    assert report is not None and report.status == "RETRIEVED" and report.errors == []
    expected = _source_counts(sandbox, CLINIC, "clinic-1")["Practitioner"]
    assert expected > 1 and stored(runtime, conn.id)["Practitioner"] == expected
    audited = _audit(runtime, "sync.retrieved")
    assert audited[-1].detail["references"] == {"fetched": expected, "missing": 0, "offsite": 0}
    # 12 searches, the refused _id search, one read per Practitioner.
    assert _runs(runtime, conn.id)[-1].requests == 12 + 1 + expected


def test_without_last_updated_a_sync_reads_everything_and_writes_nothing_new(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    _import(
        runtime,
        tmp_path,
        """
- id: sandbox-lab
  name: Sandbox Lab
  type: LAB
  fhir_base_url: "{sandbox}/sandbox-lab/fhir"
  oauth: {client_id: tether, client_secret: sandbox-secret}
  use_last_updated: false
  page_size: 50
""",
    )
    conn = connected(client, member, runtime, "sandbox-lab", "lab-1")
    first = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    again = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert first is not None and again is not None
    assert first.written > 0 and again.written == 0
    runs = _runs(runtime, conn.id)
    # Pages of 50: more requests than types; the second run read every page again.
    assert runs[0].pages > 12 and runs[1].pages == runs[0].pages


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("search_params: {Observation: [{patient: x}]}", "tether sets patient itself"),
        ("search_params: {Observation: []}", "at least one parameter set"),
        ("search_params: {observation: [{category: lab}]}", "not a FHIR resource type"),
        ("extra_authorize_params: {scope: everything}", "tether sets scope itself"),
        ("referenced_types: [Device]", "tether follows references to"),
        ("fhir_accept: text/html", "fhir_accept"),
        ("authorization_lifetime: 60", "authorization_lifetime"),
        ("page_size: 0", "page_size"),
    ],
)
def test_a_bad_profile_names_the_entry_and_the_field(extra: str, message: str) -> None:
    import yaml

    from tether.directory.schema import parse_entries
    from tether.errors import InvalidRequest

    entry = yaml.safe_load(REGIONAL_PLAIN)[0]
    entry.update(yaml.safe_load(extra))
    with pytest.raises(InvalidRequest) as caught:
        list(parse_entries([entry]))
    assert "entry 1 (id 'sandbox-regional')" in str(caught.value)
    assert message in str(caught.value)


def test_where_nothing_else_says_the_grant_end_comes_from_introspection(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    sandbox: Sandbox,
) -> None:
    before = runtime.clock()
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    # No refresh_token_expires_in and no authorization_lifetime: RFC 7662 on the refresh token.
    assert sandbox.counters(CLINIC).introspections == 1
    assert conn.authorization_expires_at is not None
    ninety = before + timedelta(days=90)
    assert abs(conn.authorization_expires_at - ninety) < timedelta(minutes=1)
    # The regional source says it in the token response: no introspection there.
    connected(client, member, runtime, REGIONAL, "regional-1")
    assert sandbox.counters(REGIONAL).introspections == 0
