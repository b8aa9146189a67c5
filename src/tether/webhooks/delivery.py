"""Delivering events to webhook endpoints: at least once, in order per endpoint, for days.

Each endpoint is a line. The ``webhooks.deliver`` job takes the endpoint's lease (one worker
per endpoint at a time), sends its oldest pending delivery, records the attempt, and goes on
with the next while the endpoint answers 2xx. A failure keeps that event at the head of the
line and schedules its retry on the Standard Webhooks schedule (:data:`SCHEDULE`, jittered);
``429``/``503`` with ``Retry-After`` wait at least that long; ``410 Gone`` disables the endpoint;
an endpoint failing for :data:`DISABLE_AFTER` is disabled, and a ``webhook_endpoint.disabled``
event says so. A job sends at most :data:`BATCH` deliveries before it queues itself again, so
a busy endpoint shares the workers with everyone else, and an attempt waits at most
``webhook_timeout`` seconds.

A worker killed mid-delivery leaves the delivery pending and the lease to expire; the
``webhook-deliveries`` sweep queues the endpoint again, and the event goes out with the same
``webhook-id`` (receivers deduplicate on it).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from tether import events
from tether.fhir.paging import retry_after_seconds
from tether.logging import get_logger
from tether.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_LAG
from tether.runtime import Runtime
from tether.store.models import Event, WebhookDelivery, WebhookEndpoint
from tether.webhooks import signing, ssrf
from tether.webhooks.endpoints import HISTORY, secrets_of

log = get_logger("tether.webhooks")

TASK = "webhooks.deliver"
# Waits before the 2nd … 8th attempt (the first is immediate): 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 10 h — then the delivery has failed and the line moves on.
SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1  # ± this fraction of each wait
MAX_RETRY_AFTER = 86400.0
DISABLE_AFTER = timedelta(days=5)
BATCH = 50  # deliveries per job before it yields to other work
LEASE_SLACK = 30.0  # seconds of lease beyond one attempt's timeout
SWEEP_LIMIT = 200
USER_AGENT = "tether-webhooks/1"


@dataclass(frozen=True)
class _Head:
    delivery_id: int
    event_pk: int
    msg_id: str
    created: datetime
    body: bytes
    url: str
    secrets: list[str]
    due: datetime | None


@dataclass(frozen=True)
class _Result:
    status: int | None
    duration_ms: int
    error: str | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Waker:
    """After a commit, queue a delivery job for each endpoint that got pending deliveries —
    on a thread of its own, so the committing request does not wait for the queue (a
    write to the SQLite queue costs milliseconds), and coalesced: endpoints woken again
    while the thread is busy are queued once. A wake-up lost with the process is found by
    the ``webhook-deliveries`` sweep."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def __call__(self, info: dict[str, Any]) -> None:
        woken = info.pop(events.WAKE, None)
        if not woken:
            return
        with self._cond:
            self._pending.update(woken)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-waker", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(timeout=30)
                    if not self._pending:
                        self._thread = None
                        return
                batch, self._pending = sorted(self._pending), set()
            for endpoint_id in batch:
                self.runtime.enqueue(TASK, endpoint_id=endpoint_id)


def deliver(runtime: Runtime, *, endpoint_id: str) -> int:
    """The ``webhooks.deliver`` job: drain the endpoint's line; returns how many delivered."""
    delivered = 0
    for _ in range(3):  # a wake-up lost to our lease while we finished is caught here
        if not _take_lease(runtime, endpoint_id):
            return delivered
        try:
            sent, then = _drain(runtime, endpoint_id)
        finally:
            _release(runtime, endpoint_id)
        delivered += sent
        if then == "more":
            runtime.enqueue(TASK, endpoint_id=endpoint_id)
            return delivered
        if isinstance(then, datetime):
            delay = max(0.0, (then - runtime.clock()).total_seconds())
            runtime.enqueue_later(delay, TASK, endpoint_id=endpoint_id)
            return delivered
        if not _due_now(runtime, endpoint_id):
            return delivered
    return delivered


def _lease_seconds(runtime: Runtime) -> float:
    return runtime.settings.webhook_timeout + LEASE_SLACK


def _take_lease(runtime: Runtime, endpoint_id: str) -> bool:
    now = runtime.clock()
    with runtime.db.write() as session:
        result = session.execute(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.disabled_at.is_(None),
                or_(WebhookEndpoint.lease_until.is_(None), WebhookEndpoint.lease_until < now),
            )
            .values(lease_until=now + timedelta(seconds=_lease_seconds(runtime)))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _release(runtime: Runtime, endpoint_id: str) -> None:
    with runtime.db.write() as session:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(lease_until=None)
        )


def _due_now(runtime: Runtime, endpoint_id: str) -> bool:
    with runtime.db.read() as session:
        return bool(
            session.scalar(
                select(
                    exists().where(
                        WebhookDelivery.endpoint_id == endpoint_id,
                        WebhookDelivery.state == "pending",
                        WebhookDelivery.next_attempt_at <= runtime.clock(),
                    )
                )
            )
        )


def _head(runtime: Runtime, endpoint_id: str) -> _Head | None:
    now = runtime.clock()
    with runtime.db.read() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.disabled_at is not None:
            return None
        row = session.execute(
            select(WebhookDelivery, Event)
            .join(Event, Event.id == WebhookDelivery.event_pk)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == "pending")
            .order_by(WebhookDelivery.event_pk)
            .limit(1)
        ).first()
        if row is None:
            return None
        delivery, event = row
        return _Head(
            delivery_id=delivery.id,
            event_pk=event.id,
            msg_id=event.event_id,
            created=event.created_at,
            body=orjson.dumps(events.envelope(event)),
            url=endpoint.url,
            secrets=secrets_of(runtime, endpoint, now),
            due=delivery.next_attempt_at,
        )


def _drain(runtime: Runtime, endpoint_id: str) -> tuple[int, str | datetime | None]:
    """Send the line's heads while they succeed. Returns (delivered, then): ``"more"`` when the
    batch ran out, the moment the head is due again, or None when the line is empty."""
    sent = 0
    settings = runtime.settings
    with httpx.Client(
        transport=ssrf.transport(allow_private=settings.webhooks_allow_private),
        timeout=httpx.Timeout(settings.webhook_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
    ) as http:
        while True:
            head = _head(runtime, endpoint_id)
            if head is None:
                return sent, None
            if head.due is not None and head.due > runtime.clock():
                return sent, head.due
            if sent >= BATCH:
                return sent, "more"
            result = _send(http, head, runtime.clock())
            retry_at = _record(runtime, endpoint_id, head, result)
            if not result.ok:
                return sent, retry_at
            sent += 1


def _send(http: httpx.Client, head: _Head, now: datetime) -> _Result:
    timestamp = int(now.timestamp())
    headers = signing.headers(head.secrets, msg_id=head.msg_id, timestamp=timestamp, body=head.body)
    started = time.perf_counter()
    try:
        response = http.post(head.url, content=head.body, headers=headers)
    except httpx.TimeoutException:
        return _Result(None, _ms(started), "timed out")
    except httpx.ConnectError as exc:
        refused = "non-public address" in str(exc)
        return _Result(None, _ms(started), str(exc) if refused else "could not connect")
    except httpx.HTTPError as exc:
        return _Result(None, _ms(started), f"network error ({type(exc).__name__})")
    status = response.status_code
    error = None
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    elif not 200 <= status < 300:
        error = f"HTTP {status}"
    wait = None
    if status in (429, 503):
        wait = retry_after_seconds(response.headers.get("retry-after"))
    return _Result(status, _ms(started), error, wait)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _record(runtime: Runtime, endpoint_id: str, head: _Head, result: _Result) -> datetime | None:
    """Write the attempt; returns when the head is due again (None: delivered or the
    endpoint is now disabled)."""
    now = runtime.clock()
    with runtime.db.write() as session:
        delivery = session.get(WebhookDelivery, head.delivery_id, with_for_update=True)
        endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
        if delivery is None or endpoint is None:
            return None  # the endpoint was deleted meanwhile
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.last_status = result.status
        delivery.last_error = result.error
        delivery.last_duration_ms = result.duration_ms
        entry = {
            "at": now.isoformat().replace("+00:00", "Z"),
            "status": result.status,
            "durationMs": result.duration_ms,
            "error": result.error,
        }
        delivery.history = [*(delivery.history or [])[-(HISTORY - 1) :], entry]
        endpoint.lease_until = now + timedelta(seconds=_lease_seconds(runtime))
        if result.ok:
            delivery.state, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
            endpoint.failing_since = None
            WEBHOOK_ATTEMPTS.labels("delivered").inc()
            WEBHOOK_LAG.observe(max(0.0, (now - head.created).total_seconds()))
            return None
        if result.status == 410:
            WEBHOOK_ATTEMPTS.labels("gone").inc()
            delivery.next_attempt_at = now  # due again if the tenant enables the endpoint
            _disable(session, endpoint, now, "the endpoint answered 410 Gone")
            return None
        WEBHOOK_ATTEMPTS.labels(
            "refused" if result.error and "non-public" in result.error else "failed"
        ).inc()
        endpoint.failing_since = endpoint.failing_since or now
        if now - endpoint.failing_since >= DISABLE_AFTER:
            delivery.next_attempt_at = now
            _disable(session, endpoint, now, "failing for 5 days")
            return None
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.state, delivery.next_attempt_at = "failed", None
            log.warning("webhook delivery failed", endpoint=endpoint_id, attempts=delivery.attempts)
            return now  # the line moves on: its next head is due now
        wait = SCHEDULE[delivery.attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        if result.retry_after is not None:
            wait = max(wait, min(result.retry_after, MAX_RETRY_AFTER))
        delivery.next_attempt_at = now + timedelta(seconds=wait)
        log.info(
            "webhook attempt failed",
            endpoint=endpoint_id,
            attempt=delivery.attempts,
            status=result.status,
            retry_in=round(wait, 1),
        )
        return delivery.next_attempt_at


def _disable(session: Session, endpoint: WebhookEndpoint, now: datetime, reason: str) -> None:
    endpoint.disabled_at, endpoint.disabled_reason = now, reason
    session.flush()
    events.record(
        session,
        tenant_id=endpoint.tenant_id,
        type=events.ENDPOINT_DISABLED,
        data={"tenantId": endpoint.tenant_id, "endpointId": endpoint.id, "reason": reason},
        now=now,
    )
    log.warning("webhook endpoint disabled", endpoint=endpoint.id, reason=reason)


def due_endpoints(runtime: Runtime, *, limit: int = SWEEP_LIMIT) -> list[str]:
    """Enabled, unleased endpoints whose line has a head due now: a lost wake-up, a crashed
    worker, a scheduled retry whose message was lost."""
    now = runtime.clock()
    with runtime.db.read() as session:
        rows = session.scalars(
            select(WebhookDelivery.endpoint_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.state == "pending",
                WebhookDelivery.next_attempt_at <= now,
                WebhookEndpoint.disabled_at.is_(None),
                or_(WebhookEndpoint.lease_until.is_(None), WebhookEndpoint.lease_until < now),
            )
            .distinct()
            .limit(limit)
        )
        return list(rows)
