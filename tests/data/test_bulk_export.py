"""FHIR Bulk Data export, driven as a Bulk Data client does (Bulk Data Access IG 2.0):
kick-off with ``Prefer: respond-async``, poll the ``Content-Location`` until 200, read the
manifest, download each file with the same credential, count the NDJSON lines."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tests.conftest import MemberCtx, TenantCtx
from tests.data.test_fhir_api import CLINIC, LAB, LAB_PATIENT, PATIENT, synced
from tests.sync.helpers import stored
from tether.data import exports
from tether.jobs.worker import EmbeddedWorker
from tether.runtime import Runtime
from tether.sandbox import Sandbox
from tether.store.models import BulkExport, FhirResource
from tether.sync.run import run_sync

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def kick_off(client: httpx.Client, url: str, headers: dict[str, str], **params: str) -> str:
    response = client.get(url, params=params, headers={**headers, **ASYNC})
    assert response.status_code == 202, response.text
    return response.headers["Content-Location"]


def wait_manifest(client: httpx.Client, status_url: str, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + 60
    while True:
        response = client.get(status_url, headers=headers)
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            assert "Expires" in response.headers
            return response.json()
        assert response.status_code == 202, response.text
        assert response.headers["X-Progress"] and int(response.headers["Retry-After"]) >= 1
        assert time.monotonic() < deadline, "the export did not finish"
        time.sleep(0.1)


def download(client: httpx.Client, manifest: dict, headers: dict[str, str]) -> list[dict]:
    resources = []
    for item in manifest["output"]:
        response = client.get(item["url"], headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = response.text.splitlines()
        assert len(lines) == item["count"]
        for line in lines:
            resource = json.loads(line)
            assert resource["resourceType"] == item["type"]
            resources.append(resource)
    return resources


def test_a_tenant_exports_every_members_data_and_polls_incrementally(
    client: httpx.Client,
    runtime: Runtime,
    tenant: TenantCtx,
    member: MemberCtx,
    other_member: MemberCtx,
    sandbox: Sandbox,
    worker: EmbeddedWorker,
) -> None:
    mine = synced(client, member, runtime, CLINIC, PATIENT)
    theirs = synced(client, other_member, runtime, LAB, LAB_PATIENT)
    key = {"Authorization": f"Bearer {tenant.api_key}"}
    before = datetime.now(UTC)
    status_url = kick_off(client, "/v1/fhir/$export", key, _outputFormat="application/fhir+ndjson")
    manifest = wait_manifest(client, status_url, key)
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    assert manifest["request"].endswith(
        "/v1/fhir/$export?_outputFormat=application%2Ffhir%2Bndjson"
    )
    transaction_time = datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
    assert transaction_time <= datetime.now(UTC) and transaction_time >= before - timedelta(
        minutes=1
    )
    resources = download(client, manifest, key)
    expected = Counter(stored(runtime, mine.id)) + Counter(stored(runtime, theirs.id))
    assert Counter(r["resourceType"] for r in resources) == expected
    # Without the credential, a file is not served.
    assert client.get(manifest["output"][0]["url"]).status_code == 401

    # Incremental: _since returns exactly what tether stored after it.
    since = datetime.now(UTC)
    time.sleep(0.01)
    with runtime.db.read() as session:
        picked = session.scalars(
            select(FhirResource.data)
            .where(FhirResource.connection_id == mine.id, FhirResource.resource_type == "Condition")
            .limit(2)
        ).all()
    changed = [{**json.loads(text), "meta": {}, "recordedDate": "2026-12-01"} for text in picked]
    sandbox.add(CLINIC, PATIENT, changed)
    again = run_sync(runtime, connection_pk=mine.id, epoch=mine.grant_epoch)
    assert again is not None and again.written == len(changed)
    status_url = kick_off(client, "/v1/fhir/$export", key, _since=since.isoformat())
    delta = download(client, wait_manifest(client, status_url, key), key)
    assert {(r["resourceType"], r["id"]) for r in delta} == {
        ("Condition", c["id"]) for c in changed
    }
    assert all(r["recordedDate"] == "2026-12-01" for r in delta)
    # _type narrows it.
    status_url = kick_off(client, "/v1/fhir/$export", key, _type="Patient,Condition")
    typed = download(client, wait_manifest(client, status_url, key), key)
    assert {r["resourceType"] for r in typed} == {"Patient", "Condition"}
    assert Counter(r["resourceType"] for r in typed)["Patient"] == 2


def test_a_member_exports_their_own_and_no_one_elses(
    client: httpx.Client,
    runtime: Runtime,
    tenant: TenantCtx,
    member: MemberCtx,
    other_member: MemberCtx,
    worker: EmbeddedWorker,
) -> None:
    mine = synced(client, member, runtime, CLINIC, PATIENT)
    synced(client, other_member, runtime, LAB, LAB_PATIENT)
    status_url = kick_off(client, "/v1/fhir/$export", member.headers)
    manifest = wait_manifest(client, status_url, member.headers)
    resources = download(client, manifest, member.headers)
    assert Counter(r["resourceType"] for r in resources) == Counter(stored(runtime, mine.id))
    # The other member sees neither the status nor the files.
    assert client.get(status_url, headers=other_member.headers).status_code == 404
    assert client.get(manifest["output"][0]["url"], headers=other_member.headers).status_code == 404
    assert client.delete(status_url, headers=other_member.headers).status_code == 404
    # The tenant's key may read its member's export.
    assert (
        client.get(status_url, headers={"Authorization": f"Bearer {tenant.api_key}"}).status_code
        == 200
    )
    # The API key exports one member through the member's base.
    key = {"Authorization": f"Bearer {tenant.api_key}"}
    one = kick_off(client, f"/v1/members/{member.member_id}/fhir/$export", key)
    assert len(download(client, wait_manifest(client, one, key), key)) == len(resources)
    # DELETE removes the export and its files.
    assert client.delete(status_url, headers=member.headers).status_code == 202
    assert client.get(status_url, headers=member.headers).status_code == 404
    assert client.get(manifest["output"][0]["url"], headers=member.headers).status_code == 404


def test_kick_off_refuses_what_it_cannot_do(client: httpx.Client, member: MemberCtx) -> None:
    h = member.headers
    no_prefer = client.get("/v1/fhir/$export", headers=h)
    assert no_prefer.status_code == 400
    assert no_prefer.json()["resourceType"] == "OperationOutcome"
    for params in (
        {"_type": "Nonsense"},
        {"_since": "yesterday"},
        {"_outputFormat": "text/csv"},
        {"_typeFilter": "Observation?code=x"},
    ):
        response = client.get("/v1/fhir/$export", params=params, headers={**h, **ASYNC})
        assert response.status_code == 400, params
        assert response.json()["resourceType"] == "OperationOutcome"
    strict = client.get(
        "/v1/fhir/$export",
        params={"bogus": "1"},
        headers={**h, **ASYNC, "Prefer": "respond-async, handling=strict"},
    )
    assert strict.status_code == 400


def test_files_split_at_the_size_limit_and_a_killed_export_starts_over(
    client: httpx.Client,
    runtime: Runtime,
    tenant: TenantCtx,
    member: MemberCtx,
) -> None:
    mine = synced(client, member, runtime, CLINIC, PATIENT)
    runtime.settings.export_file_bytes = 20_000
    key = {"Authorization": f"Bearer {tenant.api_key}"}
    status_url = kick_off(client, "/v1/fhir/$export", key, _type="Observation")
    export_id = status_url.rsplit("/", 1)[-1]
    # A worker claims it and dies half-way: the row stays running, files of attempt 1 lie about.
    row = exports._claim(runtime, export_id)
    assert row is not None and row.attempts == 1
    leftover = runtime.settings.data_dir / "exports" / export_id / "1" / "Observation-1.ndjson"
    leftover.parent.mkdir(parents=True)
    leftover.write_text('{"resourceType": "Observation", "id": "trunc')
    assert client.get(status_url, headers=key).status_code == 202  # never served as complete
    # The sweep sees the heartbeat go stale and queues it again; the next attempt completes.
    with runtime.db.write() as session:
        session.execute(
            update(BulkExport)
            .where(BulkExport.id == export_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    assert exports.sweep(runtime) == 1
    assert exports.run_export(runtime, export_id) == "completed"
    manifest = wait_manifest(client, status_url, key)
    assert len(manifest["output"]) > 1  # split by size
    resources = download(client, manifest, key)
    assert len(resources) == stored(runtime, mine.id)["Observation"]
    assert len({r["id"] for r in resources}) == len(resources)
    assert not leftover.parent.exists()  # attempt 1's files are gone
    assert all(url["url"].endswith(".ndjson") for url in manifest["output"])


def test_an_export_that_keeps_dying_fails_visibly_and_expired_ones_go(
    client: httpx.Client, runtime: Runtime, tenant: TenantCtx, member: MemberCtx
) -> None:
    synced(client, member, runtime, CLINIC, PATIENT)
    key = {"Authorization": f"Bearer {tenant.api_key}"}
    status_url = kick_off(client, "/v1/fhir/$export", key, _type="Patient")
    export_id = status_url.rsplit("/", 1)[-1]
    with runtime.db.write() as session:
        session.execute(
            update(BulkExport)
            .where(BulkExport.id == export_id)
            .values(attempts=exports.MAX_ATTEMPTS)
        )
    assert exports.run_export(runtime, export_id) is None
    failed = client.get(status_url, headers=key)
    assert failed.status_code == 500
    outcome = failed.json()
    assert (
        outcome["resourceType"] == "OperationOutcome"
        and "3 times" in outcome["issue"][0]["diagnostics"]
    )

    status_url = kick_off(client, "/v1/fhir/$export", key, _type="Patient")
    export_id = status_url.rsplit("/", 1)[-1]
    assert exports.run_export(runtime, export_id) == "completed"
    folder: Path = runtime.settings.data_dir / "exports" / export_id
    assert folder.exists()
    with runtime.db.write() as session:
        session.execute(
            update(BulkExport)
            .where(BulkExport.id == export_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert exports.sweep(runtime) >= 1
    assert not folder.exists()
    assert client.get(status_url, headers=key).status_code == 404


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A local S3-compatible server (moto's, over HTTP on loopback) and a bucket in it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="tether-exports")
    yield client
    server.stop()


def test_export_files_can_live_in_s3_compatible_storage(
    client: httpx.Client,
    runtime: Runtime,
    tenant: TenantCtx,
    member: MemberCtx,
    worker: EmbeddedWorker,
    s3: Any,
) -> None:
    conn = synced(client, member, runtime, CLINIC, PATIENT)
    runtime.settings.export_storage_url = "s3://tether-exports/bulk"
    key = {"Authorization": f"Bearer {tenant.api_key}"}
    status_url = kick_off(client, "/v1/fhir/$export", key)
    manifest = wait_manifest(client, status_url, key)
    resources = download(client, manifest, key)
    assert Counter(r["resourceType"] for r in resources) == Counter(stored(runtime, conn.id))
    export_id = status_url.rsplit("/", 1)[-1]
    listed = s3.list_objects_v2(Bucket="tether-exports", Prefix=f"bulk/{export_id}/")
    assert len(listed["Contents"]) == len(manifest["output"])
    assert not (runtime.settings.data_dir / "exports" / export_id).exists()
    assert client.delete(status_url, headers=key).status_code == 202
    assert "Contents" not in s3.list_objects_v2(Bucket="tether-exports", Prefix="bulk/")
