"""``tether keys signing create|rotate|list``: tether's JWKS as the operator manages it."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from typer.testing import Result

from tests.cli.test_tenants_cli import tether  # noqa: F401  (the fixture)

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T]|^\{\"")


def document(result: Result) -> Any:
    """The JSON document on stdout, without the log lines that may come before it."""
    lines = [line for line in result.stdout.splitlines() if not LOG_LINE.match(line)]
    return json.loads("\n".join(lines))


def test_create_rotate_list_and_the_served_jwks(tether: Any, client: httpx.Client) -> None:  # noqa: F811
    refused = tether("keys", "signing", "rotate", "--json")
    assert refused.exit_code == 1 and document(refused)["code"] == "NO_SIGNING_KEY"

    created = tether("keys", "signing", "create", "--alg", "ES384", "--json")
    assert created.exit_code == 0, created.output
    [first] = document(created)
    assert (first["alg"], first["state"]) == ("ES384", "active")
    again = tether("keys", "signing", "create", "--alg", "ES384", "--json")
    assert again.exit_code == 1 and document(again)["code"] == "SIGNING_KEY_EXISTS"
    bad = tether("keys", "signing", "create", "--alg", "HS256")
    assert bad.exit_code == 2

    rotated = tether("keys", "signing", "rotate", "--json")
    assert rotated.exit_code == 0, rotated.output
    [second] = document(rotated)
    assert second["state"] == "pending" and second["active_from"] > first["active_from"]
    listed = {k["kid"]: k["state"] for k in document(tether("keys", "signing", "list", "--json"))}
    assert listed == {first["kid"]: "retiring", second["kid"]: "pending"}  # signs until then

    served = client.get("/.well-known/jwks.json").json()["keys"]
    assert {k["kid"] for k in served} == {first["kid"], second["kid"]}
    assert all("d" not in k for k in served)  # public halves only
