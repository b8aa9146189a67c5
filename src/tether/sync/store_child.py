"""The store process's own side (:mod:`tether.sync.store_process` starts it): a loop that
writes each batch it is sent and answers, in order.

It imports the SQLite driver, orjson and :mod:`tether.sync.sqlite_writes`, nothing heavier: the
process is about 20 MB before its first batch (with SQLAlchemy and tether's models it would be
56 MB).

A request is an orjson document ``[connection pk, grant epoch, member id, clock offset,
rows]`` (``[]`` only asks for an answer: the process is up), each row as :func:`wire_rows`
makes it; an answer is ``{"written": {type: count}}``, ``{"fenced": true}`` or ``{"error":
"what went wrong"}`` (the error's kind and the driver's message, never the statement's
parameters: they carry health data).
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from typing import Any, cast

import orjson

from tether.errors import Fenced
from tether.store.sqlite import connect
from tether.sync.checks import PreparedRow
from tether.sync.children import exit_with_parent
from tether.sync.sqlite_writes import write_sqlite


def main(argv: list[str]) -> None:
    """``python -m tether.sync.store_child PATH REQUESTS_FD ANSWERS_FD PARENT_PID``."""
    path, requests, answers, parent = argv
    serve(
        path,
        Pipe(int(requests), writable=False),
        Pipe(int(answers), readable=False),
        int(parent),
    )


def serve(path: str, requests: Pipe, answers: Pipe, parent: int) -> None:
    """Write each batch sent on ``requests`` to the SQLite file at ``path`` and answer on
    ``answers``, until end of file (or until the process ``parent`` is gone)."""
    # The worker stops it by closing the pipe (it finishes what it has taken first): a signal
    # to the whole process group (Ctrl-C, a service manager's stop) is the worker's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent(parent)
    connection = connect(path)
    try:
        while True:
            try:
                document = requests.recv_bytes()
            except EOFError:
                return
            answers.send_bytes(write(connection, document))
            if connection.in_transaction:  # a rollback that failed: start afresh
                return
    finally:
        connection.close()


def wire_rows(rows: Sequence[PreparedRow]) -> list[tuple[Any, ...]]:
    """The rows as a request carries them: each one's search values as their JSON text (an
    empty string for none). The process hands that text to SQLite as it is
    (:func:`~tether.sync.sqlite_writes.upsert_sqlite` sends the values as one JSON document):
    parsed into lists they would only be serialised again, and the parse is the process's
    (measured 2026-12-06, 100,000 rows in batches of 2,000, CPU: the process's part
    0.11-0.15 s against 0.21-0.38 s, the worker's 0.22 against 0.16 s)."""
    return [
        (rtype, rid, updated, head, digest, orjson.dumps(values).decode() if values else "")
        for rtype, rid, updated, head, digest, values in rows
    ]


def write(connection: sqlite3.Connection, document: bytes) -> bytes:
    """One request's answer (see above)."""
    if document == b"[]":
        return b'{"written":{}}'
    connection_pk, epoch, member_id, offset, wired = orjson.loads(document)
    rows = [
        (rtype, rid, updated, head, digest, orjson.Fragment(values) if values else [])
        for rtype, rid, updated, head, digest, values in wired
    ]
    shift = timedelta(seconds=offset or 0)

    def clock() -> datetime:
        return datetime.now(UTC) + shift

    try:
        written: Counter[str] = write_sqlite(
            connection,
            connection_pk=connection_pk,
            epoch=epoch,
            member_id=member_id,
            # lists where tuples were, read alike; the search values as JSON text that
            # upsert_sqlite's document takes in as it is
            rows=cast(list[PreparedRow], rows),
            clock=clock,
        )
    except Fenced:
        return b'{"fenced":true}'
    except sqlite3.Error as exc:
        return orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})
    except Exception as exc:  # the worker's sync fails as a failure of tether's own
        return orjson.dumps({"error": type(exc).__name__})
    return orjson.dumps({"written": written})


if __name__ == "__main__":
    main(sys.argv[1:])
