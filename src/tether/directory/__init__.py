"""The data-source directory: an operator-controlled file, imported into the store, searched."""
