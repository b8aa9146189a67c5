"""tether's Python SDK: the connection manager over HTTP.

Needs only httpx (``pip install tether`` without the ``server`` extra). ::

    from tether.client import ConnectionManager

    with ConnectionManager("http://127.0.0.1:8000", member_token) as tether:
        url = tether.get_oauth_url("sandbox-clinic").redirect_url
        for conn in tether.get_member_connections(status="CONNECTED"):
            print(conn.id, conn.sync_status, conn.resource_counts)

``AsyncConnectionManager`` has the same methods for asyncio; ``TenantClient`` is the health
app's server side (members and member tokens, every member's connections, the event log and
webhook endpoints, with the tenant's API key); ``verify_webhook`` checks a delivery's
Standard Webhooks signature in the app's receiver. Every error is a
:class:`TetherError`; the tree is drawn in ``tether.client._exceptions``. See docs/sdk.md.
"""

from tether.client._exceptions import (
    AuthenticationError,
    ConflictError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TetherError,
    TimeoutError,
    ValidationError,
)
from tether.client._exports import Export, ExportFile
from tether.client._manager import AsyncConnectionManager, ConnectionManager
from tether.client._models import (
    Address,
    AuditEvent,
    AuditEventPage,
    Category,
    CodeableConcept,
    Coding,
    DataSource,
    DataSourcePage,
    Event,
    EventPage,
    Member,
    MemberConnection,
    MemberPage,
    MemberToken,
    OauthUrl,
    SourceType,
    Status,
    StatusUpdate,
    SyncRun,
    SyncStatus,
    TenantConnection,
    TenantConnectionPage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookEndpoint,
)
from tether.client._tenant import TenantClient
from tether.client._webhooks import WebhookVerificationError, verify_webhook

__all__ = [
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
