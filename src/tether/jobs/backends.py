"""The huey instance behind the job queue, chosen by URL.

    sqlite:///path/to/queue.db     SqliteHuey   embedded default: one file, threads in one host
    redis://host:port/db           PriorityRedisHuey   scale-out: workers on any number of hosts
    rediss://…                     the same over TLS
    postgresql://user@host/db      PostgresHuey   scale-out without Redis (tables ``huey_*``)

Results are not stored: tasks report through the database, which is the source of truth.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import huey

from tether.errors import ConfigurationError

DEFAULT_QUEUE_NAME = "tether"

_SQLITE_PREFIX = "sqlite:///"
_REDIS_SCHEMES = ("redis", "rediss")
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def make_huey(
    queue_url: str, *, name: str = DEFAULT_QUEUE_NAME, immediate: bool = False
) -> huey.Huey:
    """Build the huey instance for ``queue_url``; ``name`` namespaces the queue in its store.

    ``immediate=True`` runs each task inside ``enqueue`` (huey's immediate mode, in memory).
    """
    scheme = urlsplit(queue_url).scheme.lower()
    if queue_url.startswith(_SQLITE_PREFIX):
        path = queue_url[len(_SQLITE_PREFIX) :]
        if not path or path == ":memory:":
            raise ConfigurationError(
                "queue URL sqlite:/// needs a file path (workers share the queue through it)"
            )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return huey.SqliteHuey(name=name, filename=path, results=False, immediate=immediate)
    if scheme in _REDIS_SCHEMES:
        return huey.PriorityRedisHuey(name=name, url=queue_url, results=False, immediate=immediate)
    if scheme in _POSTGRES_SCHEMES:
        dsn = queue_url.replace("postgresql+psycopg://", "postgresql://", 1)
        return huey.PostgresHuey(name=name, dsn=dsn, results=False, immediate=immediate)
    raise ConfigurationError(
        f"unsupported queue URL scheme {scheme or '(none)'!r}: use sqlite:///path, "
        "redis://host:port/db or postgresql://…  [TETHER_QUEUE_URL]"
    )
