"""The ``tether`` command line (Typer + Rich); :func:`tether.command.main` runs it."""
