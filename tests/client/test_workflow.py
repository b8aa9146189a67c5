"""The workflow's five steps through the SDK, against the live server and the sandbox:
establish, view, disconnect, re-establish, delete (sync and async clients)."""

from __future__ import annotations

import asyncio

import pytest

from tests.client.fixtures import CLINIC, FAST, LAB, ThreadJobs, consent, retrieved
from tests.conftest import MemberCtx, run_async
from tether.client import (
    AsyncConnectionManager,
    Category,
    ConnectionManager,
    MemberConnection,
    SourceType,
    Status,
    SyncStatus,
    ValidationError,
)
from tether.testing.live_server import LiveServer


def test_five_steps_with_the_sync_client(sdk: ConnectionManager, worker: ThreadJobs) -> None:
    # Find the source, then 1. establish: getOauthUrl, consent in a browser, first sync.
    page = sdk.search_data_sources("community clinic", type="CLINICAL")
    assert [s.id for s in page.items] == [CLINIC] and page.total == 1
    source = sdk.get_data_source(CLINIC)
    assert (source.category, source.type, source.retired) == (
        Category.OAUTH,
        SourceType.CLINICAL,
        False,
    )
    assert sdk.get_member_connections() == []
    link = sdk.get_oauth_url(CLINIC)
    assert link.redirect_url.startswith(sdk.base_url + "/oauth/launch/")
    assert link.redirect_url not in repr(link)  # a bearer capability stays out of reprs
    assert consent(link.redirect_url, patient="clinic-1") == "success"
    conn = sdk.wait_until(CLINIC, retrieved, **FAST)
    assert conn.status is Status.CONNECTED and conn.sync_status is SyncStatus.RETRIEVED
    assert conn.resource_counts["Patient"] == 1 and conn.total_resources > 1
    assert conn.last_synced is not None and conn.last_synced.tzinfo is not None

    # 2. view: the connection, filters (one value or several), and the health data.
    assert [c.id for c in sdk.get_member_connections(status="CONNECTED")] == [CLINIC]
    assert sdk.get_member_connections(status=[Status.EXPIRED, "DISCONNECTED"]) == []
    assert [c.id for c in sdk.get_member_connections(type=["LAB", "CLINICAL"])] == [CLINIC]
    observations = list(sdk.get_health_records("Observation", connection_id=CLINIC, count=7))
    assert len(observations) == conn.resource_counts["Observation"] > 7  # several pages
    assert len({o["id"] for o in observations}) == len(observations)
    assert all(o["resourceType"] == "Observation" for o in observations)

    # Sync now: asynchronous; the job runs and the connection comes back RETRIEVED.
    requested = sdk.sync_now(CLINIC)
    assert requested.status is Status.CONNECTED
    again = sdk.wait_until(
        CLINIC, lambda c: retrieved(c) and c.last_synced != conn.last_synced, **FAST
    )
    assert again.resource_counts == conn.resource_counts

    # 3. disconnect: no more retrieval, data kept; idempotent.
    update = sdk.disconnect_connection(CLINIC)
    assert update.status is Status.DISCONNECTED and update.status_updated > conn.status_updated
    assert sdk.disconnect_connection(CLINIC).status is Status.DISCONNECTED
    assert len(list(sdk.get_health_records("Patient"))) == 1

    # 4. re-establish: the same call, a newer statusUpdated, the data kept.
    assert consent(sdk.get_oauth_url(CLINIC).redirect_url, patient="clinic-1") == "success"
    back = sdk.wait_until(
        CLINIC,
        lambda c: c.status is Status.CONNECTED and c.status_updated > update.status_updated,
        **FAST,
    )
    back = sdk.wait_until(CLINIC, retrieved, **FAST)
    assert back.resource_counts == conn.resource_counts

    # 5. delete: tokens revoked now, the data deleted asynchronously.
    deleted = sdk.delete_connection(CLINIC)
    assert (deleted.status, deleted.sync_status) == (Status.DELETED, SyncStatus.DELETING)
    gone = sdk.wait_until(CLINIC, lambda c: c.sync_status is SyncStatus.DATA_DELETED, **FAST)
    assert gone.status is Status.DELETED and gone.resource_counts == {}
    assert list(sdk.get_health_records("Observation", connection_id=CLINIC)) == []
    assert sdk.delete_connection(CLINIC).status is Status.DELETED  # idempotent


def test_five_steps_with_the_async_client(
    server: LiveServer, member: MemberCtx, worker: ThreadJobs
) -> None:
    async def steps() -> list[MemberConnection]:
        async with AsyncConnectionManager(server.url, member.token, backoff=0.01) as tether:
            link = await tether.get_oauth_url(LAB)
            # The stand-in browser is synchronous: keep it off the event loop.
            assert await asyncio.to_thread(consent, link.redirect_url, "lab-1") == "success"
            conn = await tether.wait_until(LAB, retrieved, **FAST)
            assert conn.status is Status.CONNECTED and conn.total_resources > 0
            listed = await tether.get_member_connections(sync_status="RETRIEVED")
            records = [r async for r in tether.get_health_records("Patient", count=1)]
            assert len(records) == 1 and records[0]["resourceType"] == "Patient"
            page = await tether.search_data_sources("lab")
            assert LAB in [s.id for s in page.items]
            assert (await tether.get_data_source(LAB)).type is SourceType.LAB

            off = await tether.disconnect_connection(LAB)
            assert off.status is Status.DISCONNECTED
            link = await tether.get_oauth_url(LAB)
            assert await asyncio.to_thread(consent, link.redirect_url, "lab-1") == "success"
            await tether.wait_until(
                LAB,
                lambda c: c.status is Status.CONNECTED and c.status_updated > off.status_updated,
                **FAST,
            )
            await tether.sync_now(LAB)
            deleted = await tether.delete_connection(LAB)
            assert deleted.sync_status is SyncStatus.DELETING
            done = await tether.wait_until(
                LAB, lambda c: c.sync_status is SyncStatus.DATA_DELETED, **FAST
            )
            return [*listed, done]

    listed_conn, done = run_async(steps())
    assert listed_conn.id == LAB and done.resource_counts == {}


def test_create_connection_for_a_basic_source(sdk: ConnectionManager) -> None:
    with pytest.raises(ValidationError) as bad:
        sdk.create_connection("sandbox-pharmacy", "pharmacy-1", "wrong")
    assert bad.value.problem["code"] == "BAD_CREDENTIALS"
    with pytest.raises(ValidationError):
        sdk.create_connection("sandbox-pharmacy", "pharmacy-1", "")  # refused before sending
    conn = sdk.create_connection("sandbox-pharmacy", "pharmacy-1", "sandbox-password")
    assert conn.id == "sandbox-pharmacy" and conn.status == Status.CONNECTED
    assert conn.category.value == "BASIC"
