"""The SDK imports nothing of the server, and installs with httpx alone."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_MODULES = ("sqlalchemy", "fastapi", "pydantic", "starlette", "authlib", "huey", "typer")
CHECK = f"""
import sys, tether.client
from tether.client import ConnectionManager
ConnectionManager("http://127.0.0.1:9", "t").close()
leaked = sorted(m for m in {SERVER_MODULES!r} if m in sys.modules)
internal = sorted(
    m for m in sys.modules if m.startswith("tether.") and not m.startswith("tether.client")
)
assert not leaked and not internal, (leaked, internal)
print("ok")
"""


def test_importing_the_sdk_imports_no_server_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.slow
def test_the_sdk_installs_and_runs_without_the_server_extra(tmp_path: Path) -> None:
    """pip install the project (dependencies resolved, no extras) into a fresh venv."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    check = """
import importlib.util
for name in ("sqlalchemy", "fastapi", "pydantic", "uvicorn", "authlib", "typer"):
    assert importlib.util.find_spec(name) is None, name + " was installed"
"""
    result = subprocess.run(
        [python, "-c", check + CHECK], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
