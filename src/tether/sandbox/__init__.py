"""A SMART-on-FHIR data source that ships with tether, with knobs to misbehave.

Public surface: :func:`create_sandbox_app`, :class:`SandboxConfig` (and its parts), the
in-process :class:`Sandbox` controller with its :class:`Knobs` and :class:`Counters`.
See ``docs/sandbox.md``.
"""

from tether.sandbox.app import SandboxApp, create_sandbox_app
from tether.sandbox.config import ClientConfig, SandboxConfig, SourceConfig
from tether.sandbox.controller import Sandbox
from tether.sandbox.counters import Counters
from tether.sandbox.knobs import KnobError, Knobs

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
