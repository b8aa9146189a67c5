"""Importing directory files into the store (the CLI and start-up use this)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from tether.directory.schema import BUNDLED_DIRECTORY, load_file
from tether.directory.service import import_sources
from tether.runtime import Runtime
from tether.store.models import DataSource


def import_file(
    runtime: Runtime,
    path: Path,
    *,
    on_total: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Validate the whole file first (nothing is written if any entry is bad), then upsert."""
    from tether.connections.manage import end_access

    entries = load_file(path)
    if on_total:
        on_total(len(entries))
    with runtime.db.write() as session:
        written = import_sources(session, entries, vault=runtime.vault, progress=progress)
    end_access(runtime, [entry.id for entry in entries if entry.retired])
    return written


def ensure_directory(runtime: Runtime) -> None:
    """At start-up: import the configured directory file, or the bundled one into an empty store."""
    configured = runtime.settings.directory_file
    if configured is not None:
        import_file(runtime, configured)
        return
    with runtime.db.read() as session:
        empty = not session.scalar(select(func.count()).select_from(DataSource))
    if empty or runtime.settings.demo:
        import_file(runtime, BUNDLED_DIRECTORY)
