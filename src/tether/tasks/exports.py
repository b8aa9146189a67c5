"""Job entry points of FHIR Bulk Data exports: the export itself, and its sweep."""

from __future__ import annotations

from tether.data.exports import fail_export, run_export, sweep
from tether.logging import get_logger
from tether.runtime import Runtime

log = get_logger("tether.exports")


def run(runtime: Runtime, *, export_id: str) -> None:
    """Write the export's files. An error that is not a crash (the process lives on) fails
    the export visibly; a crash leaves it to :func:`expired_and_stale`."""
    try:
        run_export(runtime, export_id)
    except Exception as exc:
        log.error("export failed", export=export_id, exc_info=exc)
        fail_export(runtime, export_id, "the export could not be written; start a new one")


def expired_and_stale(runtime: Runtime) -> int:
    """Remove expired exports and their files; queue again those whose job died."""
    return sweep(runtime)
