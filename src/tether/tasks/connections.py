"""Job entry points of the connection lifecycle: the asynchronous ``delete`` and its sweep,
and the notice before a grant ends at its source."""

from __future__ import annotations

from tether.connections.deletion import claim_stale_deletes, run_delete
from tether.connections.expiring import notify_expiring
from tether.runtime import Runtime


def delete(runtime: Runtime, *, connection_pk: int, epoch: int) -> None:
    run_delete(runtime, connection_pk=connection_pk, epoch=epoch)


def stale_deletes(runtime: Runtime) -> int:
    """DELETING connections with no live job (a crash or a lost message): delete again."""
    found = claim_stale_deletes(runtime)
    for pk, epoch in found:
        runtime.enqueue("delete", connection_pk=pk, epoch=epoch)
    return len(found)


def expiring_grants(runtime: Runtime) -> int:
    """``connection.expiring`` for grants that end within ``expiring_notice_days``."""
    return notify_expiring(runtime)
