"""`tether demo` starts a working instance and saves what an app needs (API key, the SDK's
clientKey, a member token); `tether serve` refuses to start without secrets."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tether.testing.live_server import free_port

TETHER = [sys.executable, "-m", "tether"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}


def test_demo_seeds_and_serves_the_directory(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo"
    proc = subprocess.Popen(
        [*TETHER, "demo", "--port", str(port), "--data-dir", str(data)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "demo did not start"
            time.sleep(0.2)
        creds = json.loads((data / "demo.json").read_text())
        assert stat.S_IMODE((data / "demo.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((data / "keys.json").stat().st_mode) == 0o600
        for token in (creds["api_key"], creds["member_token"]):
            page = httpx.get(
                f"{base}/v1/data-sources", headers={"Authorization": f"Bearer {token}"}
            ).json()
            assert "sandbox-clinic" in [s["id"] for s in page["items"]]
        assert set(creds) == {
            "tenant_id",
            "api_key",
            "client_key",
            "member_id",
            "member_token",
            "base_url",
        }
        # The SDK signs in with the saved clientKey and member token (getToken).
        signed_in = httpx.post(
            f"{base}/graphql",
            json={"query": "{ getToken { accessToken { jwtToken } } }"},
            headers={"Authorization": creds["member_token"], "ClientKey": creds["client_key"]},
        ).json()
        assert "errors" not in signed_in, signed_in
        assert signed_in["data"]["getToken"]["accessToken"]["jwtToken"]
    finally:
        proc.send_signal(signal.SIGINT)
        # A graceful stop gives running jobs and syncs 10 s each (the worker's and the sync
        # engine's stop_timeout) before cancelling: on a loaded machine, with the demo's first
        # syncs still running, that is more than 30 s (one CI run saw it).
        output, _ = proc.communicate(timeout=90)
    assert f"http://127.0.0.1:{port}" in output
    assert creds["member_id"] in output
    assert creds["client_key"] in output and creds["api_key"] in output


def test_serve_without_secrets_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*TETHER, "serve", "--data-dir", str(tmp_path), "--port", str(free_port())],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "TETHER_SECRET_KEY" in result.stderr and "TETHER_VAULT_KEYS" in result.stderr
