"""createConnection for BASIC (username/password) sources: the seam where its service plugs in.

BASIC sources are not built yet. When ``tether.connections`` gains the service (say
``basic.connect(runtime, principal, connection_id, username, password) -> (Connection,
DataSource)``), :func:`create_connection` calls it and renders the result with
``MemberConnection.of``; the GraphQL field and its tests stay as they are. The credentials are
never logged, stored or echoed here.
"""

from __future__ import annotations

from tether.accounts.service import Principal
from tether.graphql.errors import NotSupported
from tether.graphql.types import MemberConnection
from tether.runtime import Runtime


def create_connection(
    runtime: Runtime, principal: Principal, connection_id: str, username: str, password: str
) -> MemberConnection:
    """createConnection: not supported yet (a ``not-supported`` OperationOutcome)."""
    del runtime, principal, username, password  # unused until the BASIC service exists
    raise NotSupported(
        f"connecting {connection_id!r} with a username and password is not supported yet; "
        "connect OAuth sources with getOauthUrl",
        code="BASIC_CONNECTION_NOT_SUPPORTED",
    )
