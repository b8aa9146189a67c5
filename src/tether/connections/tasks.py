"""Jobs of the connection lifecycle: the asynchronous ``delete`` and its sweep."""

from __future__ import annotations

from tether import jobs
from tether.connections.manage import claim_stale_deletes, run_delete
from tether.runtime import Runtime


@jobs.task("delete", retries=5)
def delete(runtime: Runtime, *, connection_id: int, epoch: int) -> None:
    run_delete(runtime, connection_id, epoch)


@jobs.sweep("stale-deletes")
def stale_deletes(runtime: Runtime) -> int:
    """DELETING connections with no live job (a crash or a lost message): delete again."""
    found = claim_stale_deletes(runtime)
    for pk, epoch in found:
        runtime.enqueue("delete", connection_id=pk, epoch=epoch)
    return len(found)
