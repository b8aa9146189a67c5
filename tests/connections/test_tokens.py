"""The authorization a sync sends to the source: current token, fenced by the grant epoch."""

import pytest

from tests.conftest import MemberCtx
from tests.sync.helpers import connected
from tether.connections.tokens import source_authorization
from tether.errors import Fenced
from tether.runtime import Runtime
from tether.sandbox import Sandbox

CLINIC = "sandbox-clinic"


def test_source_authorization_is_the_stored_token_for_the_current_epoch_only(
    client, member: MemberCtx, runtime: Runtime, sandbox: Sandbox
) -> None:
    conn = connected(client, member, runtime, CLINIC, "clinic-1")
    before = sandbox.counters(CLINIC).refreshes
    auth = source_authorization(runtime, connection_pk=conn.id, epoch=conn.grant_epoch)
    assert auth is not None and auth.kind == "bearer"
    assert auth.sealed == conn.access_token and auth.header.startswith("Bearer ")
    assert auth.header not in repr(auth)  # a secret: never printed
    assert sandbox.counters(CLINIC).refreshes == before  # an hour-long token is not refreshed
    with pytest.raises(Fenced):
        source_authorization(runtime, connection_pk=conn.id, epoch=conn.grant_epoch + 1)
