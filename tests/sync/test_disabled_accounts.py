"""No sync runs for a disabled tenant or member: the due-syncs claim passes their connections
over (and looks at them again a requeue interval later) and a queued sync's own claim refuses;
once enabled again, their syncs are claimed when next looked at."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tests.conftest import MemberCtx, make_member
from tests.sync.helpers import connected, reload
from tether.accounts import members, tenants
from tether.connections.tokens import claim_expiring_tokens
from tether.runtime import Runtime
from tether.store.models import Connection, SyncSchedule
from tether.sync.claim import claim_sync
from tether.sync.scheduling import claim_due_syncs

CLINIC = "sandbox-clinic"


def _due_now(runtime: Runtime) -> None:
    with runtime.db.write() as session:
        session.execute(update(SyncSchedule).values(due_at=runtime.clock()))


def test_a_disabled_tenant_or_member_is_not_synced(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    mine = connected(client, member, runtime, CLINIC, "clinic-1")
    bob = make_member(runtime, member.tenant, "bob")
    his = connected(client, bob, runtime, CLINIC, "clinic-2")
    _due_now(runtime)

    tenants.set_disabled(runtime, tenant_id=member.tenant.tenant_id, actor="test", disabled=True)
    assert claim_due_syncs(runtime) == []
    assert claim_sync(runtime, connection_pk=mine.id, epoch=mine.grant_epoch) is None
    after = reload(runtime, mine.id)
    assert after.sync_status == "PENDING"  # untouched
    # Passed over until a requeue interval from now: not walked past by every later claim.
    assert after.next_sync_at is not None and after.next_sync_at > runtime.clock()

    tenants.set_disabled(runtime, tenant_id=member.tenant.tenant_id, actor="test", disabled=False)
    with runtime.db.write() as session:
        members.disable_member(session, member_id=bob.member_id, tenant_id=bob.tenant.tenant_id)
    assert claim_due_syncs(runtime) == []  # not looked at again yet
    _due_now(runtime)  # the requeue interval passes
    with runtime.db.write() as session:  # bob's sync first in line
        session.execute(
            update(SyncSchedule)
            .where(SyncSchedule.connection_id == his.id)
            .values(due_at=runtime.clock() - timedelta(minutes=1))
        )
    # One at a time: bob's (disabled) is looked at and passed over; it does not block mine.
    assert claim_due_syncs(runtime, limit=1) == []
    assert [due.pk for due in claim_due_syncs(runtime, limit=1)] == [mine.id]
    assert claim_sync(runtime, connection_pk=his.id, epoch=his.grant_epoch) is None
    claim = claim_sync(runtime, connection_pk=mine.id, epoch=mine.grant_epoch)
    assert claim is not None and claim.member_id == member.member_id
    assert reload(runtime, mine.id).sync_status == "RETRIEVING"


def test_a_disabled_tenant_s_tokens_are_not_refreshed_ahead(
    client, member: MemberCtx, runtime: Runtime
) -> None:
    """The expiring-tokens sweep leaves a disabled tenant's grants alone (a refresh would
    spend the source's refresh token for a tenant that may never come back)."""
    mine = connected(client, member, runtime, CLINIC, "clinic-1")
    with runtime.db.write() as session:
        session.execute(update(Connection).values(token_expires_at=runtime.clock()))
    assert [pk for pk, _ in claim_expiring_tokens(runtime, limit=10)] == [mine.id]
    tenants.set_disabled(runtime, tenant_id=member.tenant.tenant_id, actor="test", disabled=True)
    assert claim_expiring_tokens(runtime, limit=10) == []
