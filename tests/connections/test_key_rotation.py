"""`tether keys rotate` re-seals every secret with the newest key; old keys read meanwhile."""

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from tests.conftest import MemberCtx
from tether.runtime import Runtime
from tether.sealed import SEALED, connection_binding, rotate
from tether.store.models import Connection, DataSource
from tether.testing.flow import connect
from tether.vault import Vault, generate_key


def _sealed_values(runtime: Runtime) -> list[str]:
    values = []
    with runtime.db.read() as session:
        for column in SEALED:
            for row in session.scalars(select(column.model)):
                value = getattr(row, column.column)
                for key in column.json_path:
                    value = value.get(key) if isinstance(value, dict) else None
                if isinstance(value, str):
                    values.append(value)
    return values


def test_rotation_reseals_everything(client, member: MemberCtx, runtime: Runtime) -> None:
    connect(client, member.headers, "sandbox-clinic", patient="clinic-1")
    old_key = runtime.settings.vault_keys[0].get_secret_value()
    new_key = generate_key()
    runtime.vault = Vault([new_key, old_key])
    before = _sealed_values(runtime)
    assert before and all(runtime.vault.needs_rotation(v) for v in before)
    with runtime.db.write() as session:
        count = rotate(session, runtime.vault)
    assert count == len(before)
    only_new = Vault([new_key])
    with runtime.db.read() as session:
        conn = session.scalars(select(Connection)).one()
        token = only_new.decrypt(
            conn.access_token or "", binding=connection_binding(conn.id, "access_token")
        )
        assert token
        source = session.get(DataSource, "sandbox-clinic")
        assert source is not None
    assert all(not runtime.vault.needs_rotation(v) for v in _sealed_values(runtime))
    with runtime.db.write() as session:
        assert rotate(session, runtime.vault) == 0  # idempotent


def test_cli_rotate_generates_a_key_for_demo_instances(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    data = tmp_path / "d"
    data.mkdir()
    keys = {"secret_key": "s" * 32, "vault_keys": [generate_key()], "sandbox_admin_secret": "a"}
    (data / "keys.json").write_text(json.dumps(keys))
    cmd = [sys.executable, "-m", "tether", "--data-dir", str(data)]
    done = subprocess.run(
        [*cmd, "keys", "rotate", "--generate", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout)
    stored = json.loads((data / "keys.json").read_text())
    assert len(stored["vault_keys"]) == 2
    assert out["resealed"] == 0  # an empty instance: nothing to re-seal, but a new key in use
