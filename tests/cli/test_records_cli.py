"""Copies of records from the SDK and ``tether records export``: a Bulk Data export waited for
and saved as NDJSON, by a member (their own) and by the tenant (one member, or everyone)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.cli.test_connections_cli import connected, json_lines
from tests.client.fixtures import ThreadJobs, sdk, worker
from tests.conftest import MemberCtx, TenantCtx
from tether.bootstrap import cli
from tether.client import AuthenticationError, ConnectionManager, NotFoundError, TenantClient
from tether.runtime import Runtime
from tether.store.models import FhirResource
from tether.testing.live_server import LiveServer

__all__ = ["sdk", "worker"]
app = cli()


def saved(paths: list[Path]) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            found[json.loads(line)["resourceType"]] += 1
    return found


def stored_for(runtime: Runtime, member_id: str | None = None) -> Counter[str]:
    query = select(FhirResource.resource_type, func.count()).group_by(FhirResource.resource_type)
    if member_id:
        query = query.where(FhirResource.member_id == member_id)
    with runtime.db.read() as session:
        return Counter({t: int(n) for t, n in session.execute(query)})


def test_sdk_exports_the_members_own_and_the_tenants(
    server: LiveServer,
    runtime: Runtime,
    tenant: TenantCtx,
    member: MemberCtx,
    sdk: ConnectionManager,
    worker: ThreadJobs,
    tmp_path: Path,
) -> None:
    connected(sdk)
    mine = sdk.export_records(tmp_path / "mine", interval=0.1, timeout=60)
    assert mine.total == sum(stored_for(runtime, member.member_id).values()) > 0
    assert saved([f.path for f in mine.files if f.path]) == stored_for(runtime, member.member_id)
    only = sdk.export_records(tmp_path / "some", types=["Patient"], interval=0.1, timeout=60)
    assert {f.type for f in only.files} == {"Patient"} and only.total == 1
    later = sdk.export_records(tmp_path / "later", since=mine.transaction_time, interval=0.1)
    assert later.total <= mine.total  # what was stored in the grace window, at most
    with TenantClient(server.url, tenant.api_key) as tether:
        one = tether.export_records(tmp_path / "one", member_id=member.member_id, interval=0.1)
        assert saved([f.path for f in one.files if f.path]) == stored_for(runtime, member.member_id)
        with pytest.raises(NotFoundError):
            tether.export_records(tmp_path / "x", member_id="mem_nobody", interval=0.1)
    # The FHIR API's OperationOutcomes are read as the SDK's errors.
    with (
        ConnectionManager(server.url, "not-a-token") as stranger,
        pytest.raises(AuthenticationError) as caught,
    ):
        list(stranger.get_health_records("Observation"))
    assert caught.value.status == 401 and caught.value.detail


def test_cli_records_export(
    server: LiveServer,
    runtime: Runtime,
    tenant: TenantCtx,
    member: MemberCtx,
    sdk: ConnectionManager,
    worker: ThreadJobs,
    tmp_path: Path,
) -> None:
    connected(sdk)
    out = tmp_path / "records"
    result = CliRunner().invoke(
        app,
        [
            "records",
            "export",
            "--url",
            server.url,
            "--token",
            member.token,
            "--out",
            str(out),
            "--json",
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    (summary,) = [d for d in json_lines(result) if isinstance(d, dict) and "files" in d]
    paths = [Path(f["path"]) for f in summary["files"]]
    assert all(p.parent == out for p in paths)
    assert saved(paths) == stored_for(runtime, member.member_id)
    typed = CliRunner().invoke(
        app,
        [
            "records",
            "export",
            "--url",
            server.url,
            "--api-key",
            tenant.api_key,
            "--member",
            member.member_id,
            "--type",
            "Patient",
            "--out",
            str(tmp_path / "p"),
        ],
        env={"COLUMNS": "160"},
    )
    assert typed.exit_code == 0, typed.output
    assert saved(list((tmp_path / "p").glob("*.ndjson"))) == Counter({"Patient": 1})
    bad = CliRunner().invoke(
        app,
        ["records", "export", "--url", server.url, "--token", "nope", "--out", str(tmp_path / "n")],
    )
    assert bad.exit_code == 3
