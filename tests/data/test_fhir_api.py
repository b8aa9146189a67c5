"""The FHIR read API over stored data: search parameters, read, $everything, errors, access.

Expected results are computed here from the resources themselves (Python over the JSON the
API returns when paged without filters), not from tether's search index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import MemberCtx, TenantCtx, make_member
from tests.sync.helpers import connected, reload, stored, wait_for
from tether.data import fhir as fhir_data
from tether.runtime import Runtime
from tether.sync.run import run_sync

CLINIC, PATIENT = "sandbox-clinic", "clinic-1"
LAB, LAB_PATIENT = "sandbox-lab", "lab-1"
FHIR = "application/fhir+json"


def synced(client: httpx.Client, member: MemberCtx, runtime: Runtime, source: str, patient: str):
    """Connected and synced (here, or by a running worker that took the initial sync)."""
    conn = connected(client, member, runtime, source, patient)
    report = run_sync(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    if report is None:
        wait_for(lambda: reload(runtime, conn.id).sync_status == "RETRIEVED")
    else:
        assert report.status == "RETRIEVED", report
    return conn


def every(client: httpx.Client, url: str, headers: dict[str, str], **params: Any) -> list[dict]:
    """Every resource of a search, following next links."""
    found: list[dict] = []
    page = client.get(url, params={"_count": 100, **params}, headers=headers)
    while True:
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith(FHIR)
        bundle = page.json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        found += [entry["resource"] for entry in bundle.get("entry", [])]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            return found
        page = client.get(nxt[0], headers=headers)


def ids(resources: list[dict]) -> set[str]:
    return {r["id"] for r in resources}


def utc(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def test_capability_statement_names_what_is_served(client: httpx.Client, member: MemberCtx):
    response = client.get("/v1/fhir/metadata", headers=member.headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith(FHIR)
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    observation = {p["name"]: p["type"] for p in by_type["Observation"]["searchParam"]}
    assert observation["code"] == "token" and observation["date"] == "date"
    assert observation["_lastUpdated"] == "date" and observation["patient"] == "reference"
    condition = {p["name"] for p in by_type["Condition"]["searchParam"]}
    assert {"category", "clinical-status"} <= condition
    assert "everything" in {op["name"] for op in by_type["Patient"]["operation"]}
    assert rest["operation"][0]["name"] == "export"


@pytest.mark.parametrize("probe", [5000, 1], ids=["few-matches-plan", "many-matches-plan"])
def test_search_parameters_match_what_the_resources_say(
    client: httpx.Client,
    member: MemberCtx,
    runtime: Runtime,
    probe: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each indexed parameter gives the same answer by either plan (``tether.data.fhir``:
    an id set for a parameter matching few resources, a probe per row for one matching many);
    ``probe=1`` makes every parameter take the second."""
    monkeypatch.setattr(fhir_data, "PROBE", probe)
    started = datetime.now(UTC)
    conn = synced(client, member, runtime, CLINIC, PATIENT)
    h = member.headers
    observations = every(client, "/v1/fhir/Observation", h)
    assert len(observations) == stored(runtime, conn.id)["Observation"]
    # tether is the server of its copy: meta.lastUpdated is when tether stored it.
    assert all(utc(o["meta"]["lastUpdated"]) >= started for o in observations)
    assert all(o["meta"]["source"] == CLINIC for o in observations)

    # code: system|code, code alone, and OR with a comma.
    coded = [o for o in observations if o.get("code", {}).get("coding")]
    first = coded[0]["code"]["coding"][0]
    system, code = first["system"], first["code"]

    def has(o: dict, field: str, sys: str | None, c: str) -> bool:
        concepts = o.get(field) or []
        concepts = concepts if isinstance(concepts, list) else [concepts]
        return any(
            cd.get("code") == c and (sys is None or cd.get("system") == sys)
            for cc in concepts
            for cd in cc.get("coding", [])
        )

    expected = ids([o for o in observations if has(o, "code", system, code)])
    assert ids(every(client, "/v1/fhir/Observation", h, code=f"{system}|{code}")) == expected
    assert ids(every(client, "/v1/fhir/Observation", h, code=code)) == ids(
        [o for o in observations if has(o, "code", None, code)]
    )
    other = next(cd for o in coded for cd in o["code"]["coding"] if cd["code"] != code)
    both = ids(
        [
            o
            for o in observations
            if has(o, "code", None, code) or has(o, "code", None, other["code"])
        ]
    )
    assert ids(every(client, "/v1/fhir/Observation", h, code=f"{code},{other['code']}")) == both
    assert every(client, "/v1/fhir/Observation", h, code="no-such-code") == []

    # category on Observation; AND of two parameters.
    categorized = [o for o in observations if o.get("category")]
    assert categorized, "the sandbox clinic's Observations carry categories"
    cat = categorized[0]["category"][0]["coding"][0]["code"]
    expected = ids([o for o in observations if has(o, "category", None, cat)])
    assert ids(every(client, "/v1/fhir/Observation", h, category=cat)) == expected
    and_code = every(client, "/v1/fhir/Observation", h, category=cat, code=code)
    assert ids(and_code) == expected & ids([o for o in observations if has(o, "code", None, code)])

    # date (effectiveDateTime): ge and lt at one day split the set; eq a day matches that day.
    dated = sorted(
        (utc(o["effectiveDateTime"]), o["id"]) for o in observations if "effectiveDateTime" in o
    )
    assert len(dated) > 2
    middle = dated[len(dated) // 2][0]
    day = middle.strftime("%Y-%m-%d")
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    late = ids(every(client, "/v1/fhir/Observation", h, date=f"ge{day}"))
    early = ids(every(client, "/v1/fhir/Observation", h, date=f"lt{day}"))
    assert late == {rid for when, rid in dated if when >= start}
    assert early == {rid for when, rid in dated if when < start}
    on_day = ids(every(client, "/v1/fhir/Observation", h, date=day))
    assert on_day == {rid for when, rid in dated if when.strftime("%Y-%m-%d") == day}
    # Repeated: a range.
    year = middle.year
    in_year = ids(
        every(client, "/v1/fhir/Observation", h, date=[f"ge{year}-01-01", f"le{year}-12-31"])
    )
    assert in_year == {rid for when, rid in dated if when.year == year}

    # _lastUpdated (tether's), _id, _summary=count, _total.
    assert len(
        every(client, "/v1/fhir/Observation", h, _lastUpdated=f"ge{started.isoformat()}")
    ) == len(observations)
    assert every(client, "/v1/fhir/Observation", h, _lastUpdated=f"lt{started.isoformat()}") == []
    some = [o["id"] for o in observations[:3]]
    assert ids(every(client, "/v1/fhir/Observation", h, _id=",".join(some))) == set(some)
    counted = client.get("/v1/fhir/Observation", params={"_summary": "count"}, headers=h).json()
    assert counted["total"] == len(observations) and counted["entry"] == []
    totalled = client.get(
        "/v1/fhir/Observation", params={"_total": "accurate", "_count": 5}, headers=h
    ).json()
    assert totalled["total"] == len(observations) and len(totalled["entry"]) == 5

    # patient and connectionId / _source.
    assert len(every(client, "/v1/fhir/Observation", h, patient=PATIENT)) == len(observations)
    assert len(every(client, "/v1/fhir/Observation", h, patient=f"Patient/{PATIENT}")) == len(
        observations
    )
    assert every(client, "/v1/fhir/Observation", h, patient="someone-else") == []
    assert len(every(client, "/v1/fhir/Observation", h, _source=CLINIC)) == len(observations)

    # Condition's clinical-status and MedicationRequest's status.
    conditions = every(client, "/v1/fhir/Condition", h)
    if conditions:
        status = conditions[0]["clinicalStatus"]["coding"][0]["code"]
        assert ids(every(client, "/v1/fhir/Condition", h, **{"clinical-status": status})) == ids(
            [c for c in conditions if has(c, "clinicalStatus", None, status)]
        )
    requests = every(client, "/v1/fhir/MedicationRequest", h)
    assert requests
    value = requests[0]["status"]
    assert ids(every(client, "/v1/fhir/MedicationRequest", h, status=value)) == ids(
        [r for r in requests if r["status"] == value]
    )


def test_read_everything_and_paging(client: httpx.Client, member: MemberCtx, runtime: Runtime):
    conn = synced(client, member, runtime, CLINIC, PATIENT)
    h = member.headers
    observations = every(client, "/v1/fhir/Observation", h)
    one = observations[0]
    read = client.get(f"/v1/fhir/Observation/{one['id']}", headers=h)
    assert read.status_code == 200 and read.headers["content-type"].startswith(FHIR)
    assert read.json() == one
    # $everything: every stored resource of the patient's connection, each once.
    everything = every(client, f"/v1/fhir/Patient/{PATIENT}/$everything", h)
    assert len(everything) == sum(stored(runtime, conn.id).values())
    assert len({(r["resourceType"], r["id"]) for r in everything}) == len(everything)
    only = every(client, f"/v1/fhir/Patient/{PATIENT}/$everything", h, _type="Condition,Patient")
    assert {r["resourceType"] for r in only} <= {"Condition", "Patient"}
    # Pages: the next link carries what was asked; the self link what was applied.
    page = client.get("/v1/fhir/Observation", params={"_count": 7, "bogus": "x"}, headers=h)
    bundle = page.json()
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert "_count=7" in self_link and "bogus" not in self_link
    assert len(bundle["entry"]) == 7
    assert bundle["entry"][0]["fullUrl"].endswith(
        f"/v1/fhir/Observation/{bundle['entry'][0]['resource']['id']}"
    )


@pytest.mark.parametrize(
    ("params", "headers", "status", "code"),
    [
        ({"bogus": "x"}, {"Prefer": "handling=strict"}, 400, "invalid"),
        ({"code:text": "x"}, {}, 400, "invalid"),
        ({"date": "ap2020"}, {}, 400, "invalid"),
        ({"date": "not-a-date"}, {}, 400, "invalid"),
        ({"_lastUpdated": "ge2020-13"}, {}, 400, "invalid"),
        ({"_count": "1001"}, {}, 400, "invalid"),
        ({"_count": "abc"}, {}, 400, "invalid"),
        ({"_cursor": "x"}, {}, 400, "invalid"),
        ({"_summary": "text"}, {}, 400, "invalid"),
    ],
)
def test_bad_searches_are_operation_outcomes(
    client: httpx.Client, member: MemberCtx, params, headers, status, code
) -> None:
    response = client.get(
        "/v1/fhir/Observation", params=params, headers={**member.headers, **headers}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error" and outcome["issue"][0]["code"] == code
    assert outcome["issue"][0]["diagnostics"]


def test_errors_everywhere_under_fhir_are_operation_outcomes(
    client: httpx.Client, member: MemberCtx
) -> None:
    for url, headers, status in [
        ("/v1/fhir/Observation", {}, 401),
        ("/v1/fhir/Observation/nope", member.headers, 404),
        ("/v1/fhir/Patient/nope/$everything", member.headers, 404),
        ("/v1/fhir/bulkstatus/exp_nope", member.headers, 404),
        ("/v1/members/someone/fhir/Observation", member.headers, 404),
    ]:
        response = client.get(url, headers=headers)
        assert response.status_code == status, (url, response.text)
        assert response.headers["content-type"].startswith(FHIR), url
        assert response.json()["resourceType"] == "OperationOutcome", url


def test_each_credential_reads_only_its_own(
    client: httpx.Client,
    runtime: Runtime,
    tenant: TenantCtx,
    member: MemberCtx,
    other_member: MemberCtx,
    other_tenant: TenantCtx,
) -> None:
    synced(client, member, runtime, CLINIC, PATIENT)
    synced(client, other_member, runtime, LAB, LAB_PATIENT)
    stranger = make_member(runtime, other_tenant, "mallory")
    mine = every(client, "/v1/fhir/Observation", member.headers)
    theirs = every(client, "/v1/fhir/Observation", other_member.headers)
    assert mine and theirs and not ids(mine) & ids(theirs)
    one = mine[0]["id"]
    # Another member of the same tenant: nothing of mine, by any route.
    h = other_member.headers
    assert client.get(f"/v1/fhir/Observation/{one}", headers=h).status_code == 404
    assert client.get(f"/v1/fhir/Patient/{PATIENT}/$everything", headers=h).status_code == 404
    assert every(client, "/v1/fhir/Observation", h, _id=one) == []
    assert (
        client.get(f"/v1/members/{member.member_id}/fhir/Observation", headers=h).status_code == 404
    )
    # The tenant's API key reads every member's, or one member's.
    key = {"Authorization": f"Bearer {tenant.api_key}"}
    assert ids(every(client, "/v1/fhir/Observation", key)) == ids(mine) | ids(theirs)
    assert ids(every(client, f"/v1/members/{member.member_id}/fhir/Observation", key)) == ids(mine)
    assert (
        client.get(
            f"/v1/members/{member.member_id}/fhir/Observation/{one}", headers=key
        ).status_code
        == 200
    )
    assert (
        client.get(
            f"/v1/members/{other_member.member_id}/fhir/Observation/{one}", headers=key
        ).status_code
        == 404
    )
    # Another tenant's key and member: nothing.
    other_key = {"Authorization": f"Bearer {other_tenant.api_key}"}
    assert every(client, "/v1/fhir/Observation", other_key) == []
    assert client.get(f"/v1/fhir/Observation/{one}", headers=other_key).status_code == 404
    assert (
        client.get(
            f"/v1/members/{member.member_id}/fhir/Observation", headers=other_key
        ).status_code
        == 404
    )
    assert every(client, "/v1/fhir/Observation", stranger.headers) == []


def test_a_maintained_fhir_client_works_unchanged(
    client: httpx.Client, member: MemberCtx, tenant: TenantCtx, runtime: Runtime, server
) -> None:
    """fhirpy (Beda Software's FHIR client) against tether: read, search, paging, count."""
    from fhirpy import SyncFHIRClient

    synced(client, member, runtime, CLINIC, PATIENT)
    observations = every(client, "/v1/fhir/Observation", member.headers)
    fhir = SyncFHIRClient(f"{server.url}/v1/fhir", authorization=f"Bearer {member.token}")
    # Paging: fhirpy follows the next links itself.
    fetched = fhir.resources("Observation").limit(25).fetch_all()
    assert {o["id"] for o in fetched} == ids(observations)
    assert fhir.resources("Observation").count() == len(observations)
    code = observations[0]["code"]["coding"][0]
    found = (
        fhir.resources("Observation").search(code=f"{code['system']}|{code['code']}").fetch_all()
    )
    assert found and all(any(c["code"] == code["code"] for c in o["code"]["coding"]) for o in found)
    dated = fhir.resources("Observation").search(date__ge="2000-01-01").limit(50).fetch_all()
    assert len(dated) == sum(1 for o in observations if o.get("effectiveDateTime", "") >= "2000")
    one = fhir.reference("Observation", observations[0]["id"]).to_resource()
    assert one["id"] == observations[0]["id"] and one.resource_type == "Observation"
    patient = fhir.resources("Patient").search(_id=PATIENT).first()
    assert patient is not None and patient.id == PATIENT
    # The tenant's key, one member's base.
    tenant_fhir = SyncFHIRClient(
        f"{server.url}/v1/members/{member.member_id}/fhir",
        authorization=f"Bearer {tenant.api_key}",
    )
    assert tenant_fhir.resources("Observation").count() == len(observations)


def test_deleting_a_connection_deletes_its_search_values(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    from sqlalchemy import func, select

    from tether.connections.deletion import run_delete
    from tether.store.models import Connection, FhirSearchValue

    conn = synced(client, member, runtime, CLINIC, PATIENT)
    synced(client, member, runtime, LAB, LAB_PATIENT)

    def values() -> int:
        with runtime.db.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(FhirSearchValue)
                    .where(FhirSearchValue.member_id == member.member_id)
                )
                or 0
            )

    before = values()
    assert before > 0
    assert client.delete(f"/v1/connections/{CLINIC}", headers=member.headers).status_code == 202
    with runtime.db.read() as session:
        epoch = session.get(Connection, conn.id).grant_epoch  # type: ignore[union-attr]
    run_delete(runtime, connection_pk=conn.id, epoch=epoch, batch=7)
    left = values()
    assert 0 < left < before  # the lab's stay
    assert every(client, "/v1/fhir/Observation", member.headers, _source=CLINIC) == []
    assert {o["meta"]["source"] for o in every(client, "/v1/fhir/Observation", member.headers)} <= {
        LAB
    }
