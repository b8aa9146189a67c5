"""Command registration: importing this module attaches every command group to ``app``."""

from tether.cli import accounts, connections, directory, server, worker
from tether.cli.app import app
from tether.sandbox.cli import register as register_sandbox

register_sandbox(app)
worker.register(app)

__all__ = ["accounts", "connections", "directory", "server", "worker"]
