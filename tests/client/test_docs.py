"""The examples of docs/guide.md run, as written, against a live server and the sandbox.

Each section (Python, CLI, REST) runs in a directory holding ``.tether/demo.json`` with the
live server's URL and a member token — what ``make demo`` writes — so nothing in the examples
is substituted. Where the guide says "open the link in a browser", the test completes the
consent with ``tether.testing.flow.authorize_in_browser``. Once per run (SQLite): these pin
the documentation, not the database.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.fixtures import ThreadJobs, consent
from tests.conftest import MemberCtx
from tether.testing.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "guide.md").read_text()
FENCE = re.compile(r"^```(\w+) ([\w-]+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
LAUNCH = re.compile(r"https?://\S+/oauth/launch/[\w-]+")
ONCE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def blocks(tag: str) -> list[str]:
    return [body for _lang, found, body in FENCE.findall(GUIDE) if found == tag]


@pytest.fixture
def demo_dir(tmp_path: Path, server: LiveServer, member: MemberCtx) -> Path:
    """A working directory like the one ``make demo`` runs in."""
    (tmp_path / ".tether").mkdir()
    creds = {"base_url": server.url, "member_token": member.token, "api_key": "tk_unused"}
    (tmp_path / ".tether" / "demo.json").write_text(json.dumps(creds))
    return tmp_path


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["COLUMNS"] = "160"
    return env


@ONCE
def test_the_python_examples_run(
    demo_dir: Path, worker: ThreadJobs, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    examples = blocks("guide")
    assert len(examples) == 6
    monkeypatch.chdir(demo_dir)
    namespace: dict[str, object] = {"__name__": "guide"}
    for number, source in enumerate(examples):
        exec(compile(source, f"docs/guide.md python block {number + 1}", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "['sandbox-clinic']" in out and "CONNECTED RETRIEVED" in out
    assert "DELETED DELETING" in out


# The CLI examples run in one subprocess that starts the CLI once and reads the command lines
# from stdin: each `tether …` line is what `python -m tether …` runs, minus a few seconds of
# interpreter start-up per line. `@@exit <code>` ends each command's output.
SHELL = """
import shlex, sys
import click
from tether.bootstrap import cli
app = cli()
for line in sys.stdin:
    args = shlex.split(line)[1:]
    try:
        code = app(args, prog_name="tether", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code
    sys.stdout.write(f"@@exit {code if isinstance(code, int) else 0}\\n")
    sys.stdout.flush()
"""


@ONCE
def test_the_cli_examples_run(demo_dir: Path, worker: ThreadJobs) -> None:
    lines = [line for block in blocks("cli") for line in block.splitlines() if line.strip()]
    assert [shlex.split(line)[2] for line in lines] == [
        "connect", "list", "sync", "show", "disconnect", "connect", "delete",
    ]  # fmt: skip
    assert all(line.startswith("tether connections ") for line in lines)
    shell = subprocess.Popen(
        [sys.executable, "-c", SHELL],
        cwd=demo_dir,
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert shell.stdin is not None and shell.stdout is not None
    try:
        for line in lines:
            shell.stdin.write(line + "\n")
            shell.stdin.flush()
            output: list[str] = []
            while not (printed := shell.stdout.readline()).startswith("@@exit"):
                assert printed, f"{line}: the CLI exited"
                output.append(printed)
                found = LAUNCH.search(printed)
                if found:
                    assert consent(found.group(0)) == "success"  # the member, in a browser
            assert printed.split()[1] == "0", f"{line}: exit {printed.split()[1]}"
            if " show " in line:
                assert json.loads(output[-1])["syncStatus"] == "RETRIEVED"
            if " delete " in line:
                assert "DATA_DELETED" in "".join(output)
        shell.stdin.close()
        assert shell.wait(30) == 0
    finally:
        shell.kill()


@ONCE
def test_the_rest_examples_run(demo_dir: Path, worker: ThreadJobs) -> None:
    [setup] = blocks("rest-setup")
    examples = blocks("rest")
    assert len(examples) == 5
    answers = []
    for block in examples:
        result = subprocess.run(
            ["bash", "-euc", setup + block],
            cwd=demo_dir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        answers.append(result.stdout)
        found = LAUNCH.search(result.stdout)
        if found:
            assert consent(found.group(0)) == "success"  # the member, in a browser
            worker.join()
    assert '"status":"DISCONNECTED"' in answers[2]
    assert '"status":"DELETED"' in answers[4] and '"syncStatus":"DELETING"' in answers[4]
