"""The runtime: settings plus the long-lived objects built from them, passed to every service.

It is built once, by the composition root (:func:`tether.bootstrap.build_runtime`), and knows
nothing of the layers above it: the job queue is attached as a :class:`JobQueue`.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import httpx

from tether.logging import get_logger
from tether.metrics import MeteredTransport
from tether.settings import Settings
from tether.store.db import Database
from tether.store.models import utcnow
from tether.vault import Vault

log = get_logger("tether.jobs")

USER_AGENT = "tether/0.1"  # on every outbound request
OUTBOUND_CONNECT_TIMEOUT = 10.0  # seconds


@functools.cache
def outbound_tls() -> ssl.SSLContext:
    """The TLS context of every outbound connection, made once per process: httpx's trust
    store (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as set when it is first made).
    Making one loads the whole CA bundle, about 30 ms of CPU: a transport per OAuth step made
    a new one each, several a member's connect. A context is safe to share between threads
    and event loops; the connections it makes are not shared."""
    return httpx.create_ssl_context()


class JobQueue(Protocol):
    """Where background work is sent (``tether.jobs``)."""

    def enqueue(self, task: str, /, **kwargs: object) -> None: ...


class SyncRunner(Protocol):
    """Where a worker process runs its syncs (``tether.sync.engine.SyncEngine``)."""

    def submit(
        self,
        connection_pk: int,
        epoch: int,
        trigger: str = "scheduled",
        *,
        tenant: str = "",
        source: str = "",
        requested: float | None = None,
        timeout: float | None = None,
    ) -> bool: ...


class Service(Protocol):
    """Something that runs beside the HTTP app, such as the embedded worker."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    db: Database
    vault: Vault
    clock: Callable[[], datetime] = utcnow
    # All outbound HTTP goes through this factory, so tests can inject a transport.
    transport: httpx.BaseTransport | None = None
    jobs: JobQueue | None = None
    # The worker's sync engine while one runs in this process (the ``sync`` task hands runs
    # to it); None: the task runs the sync itself.
    syncs: SyncRunner | None = None
    # Started with the HTTP app and stopped with it (the embedded worker, for one).
    services: list[Service] = field(default_factory=list)

    @property
    def secret_key(self) -> str:
        assert self.settings.secret_key is not None  # checked by tether.bootstrap.build_runtime
        return self.settings.secret_key.get_secret_value()

    def enqueue(self, task: str, *, priority: int | None = None, **kwargs: object) -> None:
        """Queue background work when a job queue is attached (the database stays the truth:
        the sweeper re-drives anything whose message is lost or was never sent); work with a
        higher ``priority`` is taken from the queue first."""
        if self.jobs is None:
            return
        schedule = getattr(self.jobs, "schedule", None) if priority is not None else None
        try:
            if schedule is not None:
                schedule(task, priority=priority, **kwargs)
            else:
                self.jobs.enqueue(task, **kwargs)
        except LookupError:
            raise  # an unknown task name is a bug, not an outage
        except Exception as exc:
            # The change that asked for this work is already committed; the sweeper finds it in
            # the database and queues it again once the queue is back.
            log.warning("job.enqueue_failed", task=task, error=type(exc).__name__)

    def enqueue_later(self, delay: float, task: str, **kwargs: object) -> None:
        """Queue work to run after ``delay`` seconds (as :meth:`enqueue`, on the queue's
        schedule; the sweeps re-drive it from the database if the message is lost)."""
        schedule = getattr(self.jobs, "schedule", None)  # tether.jobs.Jobs has it
        if schedule is None:
            return
        try:
            schedule(task, delay=delay, **kwargs)
        except LookupError:
            raise
        except Exception as exc:
            log.warning("job.enqueue_failed", task=task, error=type(exc).__name__)

    def start(self) -> None:
        for service in self.services:
            service.start()

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def outbound_transport(self, source: str | None = None) -> httpx.BaseTransport:
        """The transport for requests to data source ``source``: counted and timed under that
        label (:mod:`tether.metrics`); the injected transport, or httpx's own, underneath."""
        underneath = self.transport or httpx.HTTPTransport(verify=outbound_tls())
        if source is None:
            return underneath
        return MeteredTransport(underneath, source=source)

    @property
    def outbound_timeout(self) -> httpx.Timeout:
        """Every outbound request's timeout: ``TETHER_HTTP_TIMEOUT``, 10 s to connect."""
        return httpx.Timeout(self.settings.http_timeout, connect=OUTBOUND_CONNECT_TIMEOUT)

    def http_client(self, *, source: str | None = None, **kwargs: object) -> httpx.Client:
        """An httpx client for outbound requests; with ``source``, its requests are counted
        as that data source's."""
        return httpx.Client(
            transport=self.outbound_transport(source),
            verify=outbound_tls(),  # for the environment's proxies' transports, if any
            timeout=kwargs.pop("timeout", self.outbound_timeout),  # type: ignore[arg-type]
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            **kwargs,  # type: ignore[arg-type]
        )
