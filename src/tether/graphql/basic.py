"""createConnection for BASIC (username/password) sources, over the BASIC service.

The credentials are never logged, stored here or echoed; the service checks them with the
source before anything is stored (``tether.connections.basic``).
"""

from __future__ import annotations

from tether.accounts.service import Principal
from tether.connections import basic
from tether.graphql.types import MemberConnection
from tether.runtime import Runtime
from tether.store.models import Connection, DataSource


def create_connection(
    runtime: Runtime, principal: Principal, connection_id: str, username: str, password: str
) -> MemberConnection:
    """createConnection(connectionId, username, password) → the new connection."""
    conn = basic.create_connection(runtime, principal, connection_id, username, password)
    with runtime.db.read() as session:
        fresh = session.get(Connection, conn.id)
        source = session.get(DataSource, conn.data_source_id)
        assert fresh is not None and source is not None
        return MemberConnection.of(fresh, source)
