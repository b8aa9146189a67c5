"""deploy/: the alert rules and the Grafana dashboard are checked by Prometheus's own tool,
and every tether metric they use is one tether really exposes."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MemberCtx
from tests.observability.conftest import SCRAPE, promtool, samples
from tests.sync.helpers import connected, reload
from tether.connections.tokens import refresh_connection
from tether.jobs import EmbeddedWorker, Jobs
from tether.runtime import Runtime

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "tether-dashboard.json"
METRIC = re.compile(r"\btether_[a-z_]+\b")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = run(promtool(), "check", "rules", RULES.name, cwd=RULES.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool(), "test", "rules", "alerts.test.yml", cwd=RULES.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def test_dashboard_is_well_formed_and_its_queries_parse(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    for panel in board["panels"]:
        assert panel["type"] in {"timeseries", "stat", "table"}
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}" and "datasource" in variables
    # Prometheus's own parser: every query as a recording rule through `promtool check rules`.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e.replace("$__rate_interval", "5m")}
                    for i, e in enumerate(dashboard_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = run(promtool(), "check", "rules", path.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_metric_deploy_uses_is_exposed(
    client: httpx.Client, member: MemberCtx, runtime: Runtime
) -> None:
    assert isinstance(runtime.jobs, Jobs)
    worker = EmbeddedWorker(runtime.jobs, poll_interval=0.05, sweep_interval=None)
    worker.start()
    try:
        conn = connected(client, member, runtime, "sandbox-clinic", "clinic-1")
        deadline = time.monotonic() + 60
        while reload(runtime, conn.id).sync_status != "RETRIEVED":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.stop()
    refresh_connection(runtime, connection_pk=conn.id, stale_sealed=None)
    text = client.get("/metrics", headers=SCRAPE).text
    exposed = {name for name, _labels in samples(text)}
    exposed |= {family.name for family in text_string_to_metric_families(text)}  # even empty
    used = set(METRIC.findall(RULES.read_text()))
    for expr in dashboard_exprs():
        used |= set(METRIC.findall(expr))
    assert used and not used - exposed, sorted(used - exposed)
