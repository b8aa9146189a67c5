"""The ``tether`` command line (Typer + Rich); :func:`tether.bootstrap.main` runs it."""
