"""Command registration: importing this module attaches every command group to ``app``."""

from tether.cli import accounts, directory, server
from tether.cli.app import app
from tether.sandbox.cli import register as register_sandbox

register_sandbox(app)

__all__ = ["accounts", "directory", "server"]
