"""tether under a property-based API fuzzer it does not control: schemathesis, driven by the
served ``/openapi.json`` (and GraphQL's introspection), on both engines, as the tenant and as a
member, with every conformance check: no server error, every status and content type
documented, response bodies matching their schemas, schema-valid input accepted and invalid
input refused, and the stateful phase. Deterministic (a fixed seed) and bounded; a longer run:
``make fuzz`` (``TETHER_FUZZ_EXAMPLES``)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MemberCtx, TenantCtx
from tests.sync.helpers import connected
from tether.runtime import Runtime
from tether.testing.live_server import LiveServer

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = "20261203"
EXAMPLES = os.environ.get("TETHER_FUZZ_EXAMPLES", "10")
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def _fuzz(target: str, token: str, report: Path, *options: str) -> tuple[int, str]:
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(CONFIG),
        "run",
        target,
        "-H",
        f"Authorization: Bearer {token}",
        "--seed",
        SEED,
        "--max-examples",
        EXAMPLES,
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
        *options,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=report)
    return done.returncode, done.stdout + done.stderr


def _responses(report: Path) -> list[dict[str, Any]]:
    """Every response schemathesis recorded (its NDJSON report)."""
    found = []
    for path in report.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            for interaction in finished["recorder"].get("interactions", {}).values():
                if interaction.get("response"):
                    found.append(interaction["response"])
    return found


def _body(response: dict[str, Any]) -> bytes:
    content = response.get("content") or {}
    encoded = content.get("$base64") if isinstance(content, dict) else None
    return base64.b64decode(encoded) if encoded else b""


@pytest.fixture
def seeded(client: httpx.Client, member: MemberCtx, runtime: Runtime) -> MemberCtx:
    """A member with a connection, so reads of real things are among the generated calls."""
    connected(client, member, runtime, "sandbox-clinic", "clinic-1")
    return member


@pytest.mark.parametrize("who", ["tenant", "member"])
def test_the_rest_api_conforms_to_its_openapi_document_under_fuzzing(
    server: LiveServer, tenant: TenantCtx, seeded: MemberCtx, who: str, tmp_path: Path
) -> None:
    token = tenant.api_key if who == "tenant" else seeded.token
    code, output = _fuzz(
        f"{server.url}/openapi.json",
        token,
        tmp_path,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
    )
    responses = _responses(tmp_path)
    print(f"schemathesis ({who}): {len(responses)} requests")
    assert code == 0, output[-6000:]
    assert len(responses) > 500  # it really ran
    assert not [r for r in responses if r["status_code"] >= 500]


def test_graphql_never_crashes_under_fuzzing(
    server: LiveServer, seeded: MemberCtx, tmp_path: Path
) -> None:
    """Business errors are GraphQL ``errors`` with a problem code (the SDK's wire protocol
    needs them there), so the fuzzer's "any error entry" check is off; a crash — HTTP 5xx or
    an ``INTERNAL_SERVER_ERROR`` entry — fails the test."""
    code, output = _fuzz(
        f"{server.url}/graphql",
        seeded.token,
        tmp_path,
        "--exclude-checks",
        "not_a_server_error",
    )
    responses = _responses(tmp_path)
    print(f"schemathesis (GraphQL): {len(responses)} documents")
    assert code == 0, output[-6000:]
    assert len(responses) > 50
    crashes = []
    for response in responses:
        body = _body(response)
        if response["status_code"] >= 500 or b"INTERNAL_SERVER_ERROR" in body:
            crashes.append(body[:500])
    assert crashes == []
