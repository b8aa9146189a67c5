"""``tether connections``: the member's commands over HTTP, their --json output and exit codes.

Most commands run in-process (Typer's CliRunner) against the live server; ``connect``, which
waits while a browser approves, runs as a real ``python -m tether`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.client.fixtures import CLINIC, RETIRED, ThreadJobs, consent, sdk, worker
from tests.conftest import MemberCtx
from tether.bootstrap import cli
from tether.cli.connections import wire
from tether.client import ConnectionManager
from tether.testing.live_server import LiveServer, free_port

__all__ = ["sdk", "worker"]  # fixtures shared with tests/client
app = cli()


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["connections", *args], env={"COLUMNS": "160", **(env or {})})


def as_member(server: LiveServer, member: MemberCtx) -> list[str]:
    return ["--url", server.url, "--token", member.token]


def json_lines(result: Result) -> list[Any]:
    """The JSON documents on stdout (the live server in this process may log there too)."""
    found = []
    for line in result.stdout.splitlines():
        if line.startswith(("{", "[")):
            found.append(json.loads(line))
    return found


def connected(sdk: ConnectionManager, source: str = CLINIC, patient: str = "clinic-1") -> None:
    assert consent(sdk.get_oauth_url(source).redirect_url, patient=patient) == "success"
    sdk.wait_until(source, lambda c: c.sync_status == "RETRIEVED", interval=0.05, timeout=30)


def test_list_show_sync_disconnect_delete_with_json(
    server: LiveServer, member: MemberCtx, sdk: ConnectionManager, worker: ThreadJobs
) -> None:
    me = as_member(server, member)
    empty = run("list", *me, "--json")
    assert empty.exit_code == 0 and json_lines(empty) == [[]]
    connected(sdk)

    listed = run("list", *me, "--json", "--status", "CONNECTED", "--type", "CLINICAL")
    [[row]] = json_lines(listed)
    assert row == wire(sdk.get_connection(CLINIC))
    assert row["id"] == CLINIC and row["syncStatus"] == "RETRIEVED"
    assert row["statusUpdated"].endswith("Z") and row["resourceCounts"]["Patient"] == 1
    assert json_lines(run("list", *me, "--json", "--status", "EXPIRED")) == [[]]
    table = run("list", *me)
    assert table.exit_code == 0 and CLINIC in table.stdout and "RETRIEVED" in table.stdout

    [shown] = json_lines(run("show", CLINIC, *me, "--json"))
    assert shown == row
    human = run("show", CLINIC, *me)
    assert "syncStatus: RETRIEVED" in human.stdout

    synced = run("sync", CLINIC, *me, "--wait", "--interval", "0.05", "--json")
    assert synced.exit_code == 0, synced.stderr
    [after] = json_lines(synced)
    assert after["syncStatus"] == "RETRIEVED" and after["lastSynced"] > row["lastSynced"]

    off = run("disconnect", CLINIC, *me, "--json")
    assert off.exit_code == 0 and json_lines(off)[0]["status"] == "DISCONNECTED"

    refused = run("delete", CLINIC, *me, "--json")  # no --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    deleted = run("delete", CLINIC, *me, "--yes", "--wait", "--interval", "0.05", "--json")
    assert deleted.exit_code == 0, deleted.stderr
    [gone] = json_lines(deleted)
    assert (gone["status"], gone["syncStatus"], gone["resourceCounts"]) == (
        "DELETED",
        "DATA_DELETED",
        {},
    )
    human = run("delete", CLINIC, *me, "--yes")  # idempotent
    assert human.exit_code == 0 and "DELETED" in human.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "Not A Slug"], 2, "not a data source id"),
        (["list", "--status", "BOGUS"], 2, "BOGUS"),  # Typer refuses it: a usage error
        (["show", CLINIC], 4, "UNKNOWN_CONNECTION"),
        (["connect", RETIRED, "--no-wait"], 5, "ACCESS_ENDED"),
        (["sync", CLINIC], 4, "no connection"),
    ],
)
def test_errors_have_messages_and_exit_codes(
    server: LiveServer, member: MemberCtx, args: list[str], code: int, message: str
) -> None:
    result = run(*args, *as_member(server, member))
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_authentication_and_network_errors(server: LiveServer, member: MemberCtx) -> None:
    bad = run("list", "--url", server.url, "--token", "forged", "--json")
    assert bad.exit_code == 3 and "error" in bad.stderr
    [doc] = json_lines(bad)
    assert doc["error"]["status"] == 401 and doc["error"]["type"].endswith("unauthenticated")
    missing = run("list", "--url", server.url, env={"TETHER_MEMBER_TOKEN": ""})
    assert missing.exit_code == 3 and "TETHER_MEMBER_TOKEN" in missing.stderr
    from_env = run("list", "--url", server.url, "--json", env={"TETHER_MEMBER_TOKEN": member.token})
    assert from_env.exit_code == 0 and json_lines(from_env) == [[]]
    closed = run("list", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t")
    assert closed.exit_code == 6 and "ConnectError" in closed.stderr


def test_demo_reads_the_url_and_token_that_tether_demo_saved(
    server: LiveServer, member: MemberCtx, tmp_path: Path
) -> None:
    data = tmp_path / "demo-data"
    data.mkdir()
    (data / "demo.json").write_text(
        json.dumps({"base_url": server.url, "member_token": member.token, "api_key": "unused"})
    )
    runner = CliRunner()
    ok = runner.invoke(app, ["--data-dir", str(data), "connections", "list", "--demo", "--json"])
    assert ok.exit_code == 0, ok.stderr
    assert json_lines(ok) == [[]]
    nothing = runner.invoke(app, ["--data-dir", str(tmp_path), "connections", "list", "--demo"])
    assert nothing.exit_code == 2 and "tether demo" in nothing.stderr


def test_connect_prints_the_link_then_waits_for_the_browser(
    server: LiveServer, member: MemberCtx, sdk: ConnectionManager, worker: ThreadJobs
) -> None:
    """A real process: it prints the link, the member approves, it sees CONNECTED."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["TETHER_MEMBER_TOKEN"] = member.token
    command = [sys.executable, "-m", "tether", "connections", "connect", CLINIC]
    options = ["--url", server.url, "--interval", "0.05", "--timeout", "60", "--json"]
    proc = subprocess.Popen(
        [*command, *options], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert consent(first["redirectUrl"], patient="clinic-2") == "success"
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    done = json.loads(out.strip().splitlines()[-1])["connection"]
    assert done["id"] == CLINIC and done["status"] == "CONNECTED"

    # Re-establishing: an existing CONNECTED row only counts once statusUpdated moves on.
    timed_out = run(
        "connect", CLINIC, "--url", server.url, "--token", member.token,
        "--timeout", "0.3", "--interval", "0.05",
    )  # fmt: skip
    assert timed_out.exit_code == 1 and "within 0.3s" in timed_out.stderr
    assert "/oauth/launch/" in timed_out.stdout


def test_create_connects_a_basic_source(server: LiveServer, member: MemberCtx) -> None:
    me = as_member(server, member)
    wrong = run(
        "create",
        "sandbox-pharmacy",
        "--username",
        "pharmacy-1",
        *me,
        "--json",
        env={"TETHER_PORTAL_PASSWORD": "nope"},
    )
    assert wrong.exit_code == 2 and "BAD_CREDENTIALS" in wrong.stderr
    made = run(
        "create",
        "sandbox-pharmacy",
        "--username",
        "pharmacy-1",
        *me,
        "--json",
        env={"TETHER_PORTAL_PASSWORD": "sandbox-password"},
    )
    assert made.exit_code == 0, made.stderr
    [conn] = json_lines(made)
    assert (conn["id"], conn["category"], conn["status"]) == (
        "sandbox-pharmacy",
        "BASIC",
        "CONNECTED",
    )
    assert "sandbox-password" not in made.stdout
