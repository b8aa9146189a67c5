"""The SDK's public surface is this list, sorted; its enums are the server's vocabulary."""

import dataclasses

import tether.client
from tether import domain
from tether.client import Category, SourceType, Status, SyncStatus, TetherError

EXPECTED = [
    "Address",
    "AsyncConnectionManager",
    "AuditEvent",
    "AuditEventPage",
    "AuthenticationError",
    "Category",
    "CodeableConcept",
    "Coding",
    "ConflictError",
    "ConnectionManager",
    "DataSource",
    "DataSourcePage",
    "Event",
    "EventPage",
    "Export",
    "ExportFile",
    "Member",
    "MemberConnection",
    "MemberPage",
    "MemberToken",
    "NetworkError",
    "NotFoundError",
    "OauthUrl",
    "RateLimitError",
    "ServerError",
    "SourceType",
    "Status",
    "StatusUpdate",
    "SyncRun",
    "SyncStatus",
    "TenantClient",
    "TenantConnection",
    "TenantConnectionPage",
    "TetherError",
    "TimeoutError",
    "ValidationError",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryPage",
    "WebhookEndpoint",
    "WebhookVerificationError",
    "verify_webhook",
]


def test_all_is_pinned_and_sorted() -> None:
    assert tether.client.__all__ == EXPECTED == sorted(EXPECTED)


def test_every_public_name_is_defined_in_a_private_module() -> None:
    for name in tether.client.__all__:
        value = getattr(tether.client, name)
        assert value.__module__.startswith("tether.client._"), name


def test_every_error_is_a_tether_error() -> None:
    errors = [n for n in EXPECTED if n.endswith("Error")]
    assert all(issubclass(getattr(tether.client, n), TetherError) for n in errors)
    assert tether.client.TimeoutError is not TimeoutError  # the SDK's own, not the builtin


def test_enums_match_the_servers() -> None:
    pairs = [
        (Category, domain.Category),
        (SourceType, domain.SourceType),
        (Status, domain.Status),
        (SyncStatus, domain.SyncStatus),
    ]
    for sdk, server in pairs:
        assert [m.value for m in sdk] == [m.value for m in server]


def test_results_are_frozen_dataclasses() -> None:
    results = [n for n in EXPECTED if dataclasses.is_dataclass(getattr(tether.client, n))]
    assert len(results) == 24  # 13, then tenant-wide, sync history, webhook and export results
    for name in results:
        params = getattr(tether.client, name).__dataclass_params__
        assert params.frozen, name
