"""The ``tether`` command line (Typer + Rich)."""

from tether.cli.app import app, main

__all__ = ["app", "main"]
