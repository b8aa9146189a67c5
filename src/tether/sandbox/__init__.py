"""A SMART-on-FHIR data source that ships with tether, with knobs to misbehave.

Public surface: :func:`create_sandbox_app`, :class:`SandboxConfig` (and its parts), the
in-process :class:`Sandbox` controller with its :class:`Knobs` and :class:`Counters`.
See ``docs/sandbox.md``. Names load lazily, so ``tether --help`` and the other CLI commands do
not pay for the synthetic-data generator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.sandbox.app import SandboxApp, create_sandbox_app
    from tether.sandbox.config import ClientConfig, SandboxConfig, SourceConfig
    from tether.sandbox.controller import Sandbox
    from tether.sandbox.counters import Counters
    from tether.sandbox.knobs import KnobError, Knobs

_WHERE = {
    "ClientConfig": "tether.sandbox.config",
    "Counters": "tether.sandbox.counters",
    "KnobError": "tether.sandbox.knobs",
    "Knobs": "tether.sandbox.knobs",
    "Sandbox": "tether.sandbox.controller",
    "SandboxApp": "tether.sandbox.app",
    "SandboxConfig": "tether.sandbox.config",
    "SourceConfig": "tether.sandbox.config",
    "create_sandbox_app": "tether.sandbox.app",
}

__all__ = [
    "ClientConfig",
    "Counters",
    "KnobError",
    "Knobs",
    "Sandbox",
    "SandboxApp",
    "SandboxConfig",
    "SourceConfig",
    "create_sandbox_app",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tether.sandbox' has no attribute {name!r}")
