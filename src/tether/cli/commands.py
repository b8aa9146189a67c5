"""Command registration: importing this module attaches every command group to ``app``."""

from tether.cli import accounts, directory, server

__all__ = ["accounts", "directory", "server"]
