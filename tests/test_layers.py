"""The import graph keeps the layers of docs/architecture.md: nothing imports upward or across.

    bootstrap  ←  adapters (api, graphql, web, cli, tasks)  ←  http  ←  services  ←  ground

Every ``import`` in ``src/tether`` counts, at module level or inside a function, and under
``TYPE_CHECKING`` too. The SDK (``tether.client``) and the sandbox are products of their own:
they import nothing of the rest of tether.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "tether"

GROUND = 0
SERVICES = 1
HTTP = 2
ADAPTERS = 3
TOP = 4

# Top-level package or module of tether → (layer, rank among services).
PARTS: dict[str, tuple[int, int]] = {
    **{
        name: (GROUND, 0)
        for name in (
            "settings",
            "errors",
            "domain",
            "ids",
            "logging",
            "vault",
            "sealed",
            "store",
            "runtime",
            "oauth",
            "fhir",
            "metrics",
            "tracing",
            "heap",
        )
    },
    # Services, in the order they may use each other (a higher rank uses lower ones).
    "jobs": (SERVICES, 0),
    "audit": (SERVICES, 0),
    "signing": (SERVICES, 0),
    "accounts": (SERVICES, 1),
    "directory": (SERVICES, 1),
    "identity": (SERVICES, 2),
    "events": (SERVICES, 2),
    "connections": (SERVICES, 3),
    "sync": (SERVICES, 4),
    "data": (SERVICES, 4),
    "webhooks": (SERVICES, 4),
    "http": (HTTP, 0),
    **{name: (ADAPTERS, 0) for name in ("api", "graphql", "web", "cli", "tasks")},
    **{
        name: (TOP, 0)
        for name in ("bootstrap", "command", "demo", "testing", "__main__", "__init__")
    },
}
# Products of their own: they may import only themselves.
SEALED_OFF = ("client", "sandbox")
# What one adapter may use of a sealed-off product (the CLI talks to tether through the SDK;
# the CLI mounts the sandbox's own commands; the test helpers drive the sandbox).
ALLOWED_ACROSS = {
    ("cli", "client"),
    ("cli", "sandbox"),
    ("bootstrap", "sandbox"),
    ("testing", "sandbox"),
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(SRC).with_suffix("")
        name = ".".join(rel.parts)
        yield name.removesuffix(".__init__"), path


def _imports(module: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "tether":  # ``from tether import graphql`` imports a part
                yield from (f"tether.{alias.name}" for alias in node.names)
            else:
                yield target


def _violations() -> list[str]:
    found = []
    for module, path in _modules():
        mine = _part(module)
        for target in _imports(module, path):
            if not target.startswith("tether.") or target == "tether.":
                continue
            theirs = _part(target)
            if theirs == mine or (mine, theirs) in ALLOWED_ACROSS:
                continue
            if mine in SEALED_OFF or theirs in SEALED_OFF:
                found.append(f"{module} imports {target}: {theirs or mine} stands alone")
                continue
            (layer, rank), (their_layer, their_rank) = PARTS[mine], PARTS[theirs]
            if their_layer > layer:
                found.append(f"{module} imports {target} from a layer above it")
            elif their_layer == layer == ADAPTERS:
                found.append(f"{module} imports {target}: adapters do not use each other")
            elif their_layer == layer == SERVICES and their_rank >= rank:
                found.append(f"{module} imports {target}: a service of its own rank or above")
    return found


def test_every_part_of_tether_has_a_layer() -> None:
    parts = {_part(module) for module, _ in _modules()}
    assert parts - set(PARTS) - set(SEALED_OFF) == set()


def test_no_layer_imports_upward_or_across() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("tether.store.models", "from tether.connections import lifecycle", "above it"),
        ("tether.accounts.members", "from tether.identity import principals", "rank"),
        ("tether.web.render", "from tether.api.schemas import Wire", "each other"),
        ("tether.client._base", "import tether.errors", "stands alone"),
    ],
)
def test_the_check_catches_what_it_forbids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, expected: str
) -> None:
    """The rule is not vacuous: an upward, sideways or outside import is reported."""
    fake_root = tmp_path / "tether"
    target = fake_root.joinpath(*module.split(".")[1:]).with_suffix(".py")
    target.parent.mkdir(parents=True)
    target.write_text(source + "\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    problems = _violations()
    assert len(problems) == 1 and expected in problems[0]
