"""``python -m tether`` runs the CLI."""

from tether.command import main

main()
