"""Importing a directory file into the store: validated whole, then upserted in one unit of work.

What a retired source means for its connections is the connection service's business
(:func:`tether.connections.retirement.import_directory` calls this, then ends their access).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tether.directory.schema import load_file
from tether.directory.service import import_sources
from tether.runtime import Runtime


@dataclass(frozen=True)
class ImportResult:
    written: int
    retired: tuple[str, ...]  # ids of the entries marked retired


def import_file(
    runtime: Runtime,
    path: Path,
    *,
    on_total: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Validate the whole file first (nothing is written if any entry is bad), then upsert."""
    entries = load_file(path)
    if on_total:
        on_total(len(entries))
    with runtime.db.write() as session:
        written = import_sources(session, entries, vault=runtime.vault, progress=progress)
    return ImportResult(written, tuple(entry.id for entry in entries if entry.retired))
