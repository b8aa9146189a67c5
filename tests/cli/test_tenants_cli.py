"""``tether tenants list|show|update|disable|enable`` and ``tether keys list``: the operator's
tenant administration, its ``--json`` output and its problems, checked against the live API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from tether.bootstrap import cli
from tether.settings import Settings

app = cli()


@pytest.fixture
def tether(settings: Settings) -> Any:
    """``tether(*args)``: the command against the test's database, with its secrets."""
    env = {
        "COLUMNS": "200",
        "TETHER_DATABASE_URL": settings.resolved_database_url,
        "TETHER_DATA_DIR": str(settings.data_dir),
        "TETHER_QUEUE_URL": str(settings.queue_url),
        "TETHER_PUBLIC_BASE_URL": settings.public_base_url,
        "TETHER_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "TETHER_VAULT_KEYS": ",".join(k.get_secret_value() for k in settings.vault_keys),
    }

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=env)

    return run


def document(result: Result) -> Any:
    """The one JSON document on stdout."""
    start = min(i for i in (result.stdout.find("{"), result.stdout.find("[")) if i >= 0)
    return json.loads(result.stdout[start:])


def test_tenant_administration_end_to_end(tether: Any, client: httpx.Client) -> None:
    created = tether(
        "tenants", "create", "Native App", "--return-url", "com.example.app:/done", "--json"
    )
    assert created.exit_code == 0, created.output
    tenant_id, api_key = document(created)["tenant_id"], document(created)["api_key"]
    headers = {"Authorization": f"Bearer {api_key}"}

    listed = document(tether("tenants", "list", "--json"))
    assert [(t["id"], t["name"], t["disabled"]) for t in listed] == [
        (tenant_id, "Native App", False)
    ]
    shown = document(tether("tenants", "show", tenant_id, "--json"))
    assert shown["return_urls"] == ["com.example.app:/done"] and shown["allowed_origins"] == []

    updated = tether(
        "tenants", "update", tenant_id, "--name", "Native Health",
        "--return-url", "https://app.example.test/done", "--return-url", "com.example.app:/done",
        "--allowed-origin", "https://app.example.test", "--json",
    )  # fmt: skip
    assert updated.exit_code == 0, updated.output
    assert document(updated)["name"] == "Native Health"
    seen = client.get("/v1/tenant", headers=headers).json()
    assert seen["returnUrls"] == ["https://app.example.test/done", "com.example.app:/done"]
    assert seen["allowedOrigins"] == ["https://app.example.test"]

    keys = document(tether("keys", "list", tenant_id, "--json"))
    assert [(k["key_id"], k["name"], k["revoked_at"]) for k in keys] == [
        (api_key.split("_")[1], "initial", None)
    ]

    disabled = tether("tenants", "disable", tenant_id, "--json")
    assert disabled.exit_code == 0 and document(disabled)["disabled"] is True
    refused = client.get("/v1/tenant", headers=headers)
    assert refused.status_code == 401 and refused.json()["detail"] == "this tenant is disabled"
    enabled = tether("tenants", "enable", tenant_id)
    assert enabled.exit_code == 0 and "disabled: False" in enabled.stdout
    events = client.get("/v1/audit-events", headers=headers).json()["items"]
    assert [(e["action"], e["actor"]) for e in events] == [
        ("tenant.updated", "operator:cli"),
        ("tenant.disabled", "operator:cli"),
        ("tenant.enabled", "operator:cli"),
    ]


def test_refused_input_is_a_problem_and_changes_nothing(tether: Any) -> None:
    tenant_id = document(tether("tenants", "create", "App", "--json"))["tenant_id"]
    before = document(tether("tenants", "show", tenant_id, "--json"))
    for args, field in (
        (["--return-url", "javascript:alert(1)"], "returnUrls[0]"),
        (["--return-url", "http://app.example.test/x"], "returnUrls[0]"),
        (["--return-url", "com.example.app:/a"] * 2, "returnUrls[1]"),
        (["--allowed-origin", "https://a.test/path"], "allowedOrigins[0]"),
        (["--name", "", "--return-url", "com.example.app:/a"], "name"),
    ):
        result = tether("tenants", "update", tenant_id, *args, "--json")
        assert result.exit_code == 1, args
        problem = document(result)
        assert problem["type"] == "urn:tether:problem:invalid-request"
        assert problem["field"] == field, args
        plain = tether("tenants", "update", tenant_id, *args)
        assert plain.exit_code == 1 and field in plain.output
    assert document(tether("tenants", "show", tenant_id, "--json")) == before
    bad_create = tether("tenants", "create", "X", "--return-url", "file:///etc/passwd", "--json")
    assert bad_create.exit_code == 1 and document(bad_create)["field"] == "returnUrls[0]"
    assert len(document(tether("tenants", "list", "--json"))) == 1
    missing = tether("tenants", "show", "ten_missing", "--json")
    assert missing.exit_code == 1 and document(missing)["status"] == 404
    assert tether("keys", "list", "ten_missing").exit_code == 1
