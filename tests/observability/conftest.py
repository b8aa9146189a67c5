"""Metrics and traces: the settings open ``/metrics`` with a bearer secret."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tether.settings import Settings

METRICS_SECRET = "metrics-secret-for-tests"
SCRAPE = {"Authorization": f"Bearer {METRICS_SECRET}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_SECRET)})


def promtool() -> str:
    """Prometheus's own checker (installed by scripts/with-services)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run the suite through scripts/with-services")
    return path


def check_exposition(text: str) -> None:
    """``promtool check metrics``: valid exposition format and no lint findings (names,
    suffixes, units as Prometheus's conventions want them)."""
    done = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr + done.stdout


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)
