"""``python -m tether`` runs the CLI."""

from tether.bootstrap import main

main()
