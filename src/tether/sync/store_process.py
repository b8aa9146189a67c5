"""The store process: a worker's page writes on SQLite, in a process of their own.

SQLite takes one writer at a time, so a worker's page writes run one after another whatever
its threads. In the worker's own process each write also needs the interpreter's lock between
its statements, and the pages' preparation (parsing, checks, serialising) holds that lock most
of the time: on SQLite the writes are a sync's critical path, and there they waited for the
lock and for a core (docs/benchmarks.md, "Sync"). In a process of their own they wait for a
core only.

The worker's syncs hand the process their batches of prepared rows, one orjson document each,
over one pipe and in order; it writes each batch as :func:`~tether.sync.fenced_writes.
write_rows` does in a database thread (one transaction, fenced by the grant epoch, stamped
inside it) and answers in the same order (:mod:`tether.sync.store_child`, its side: the driver
and nothing heavier). A sync keeps up to :data:`DEPTH` batches there, the
one being written and the next, so the process never waits for the worker's event loop
between two of them.

The process starts with the first write (a worker that never syncs never starts one), ends when
the worker closes it or is gone, and a write after it died starts a new one: the writes it had
taken fail with :class:`StoreFailed`, and their syncs end as a failure of tether's own (retried
soon; what was committed stays).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection as Pipe

import orjson

from tether.errors import Fenced
from tether.logging import get_logger
from tether.store.sqlite import database_file
from tether.sync import store_child
from tether.sync.checks import PreparedRow

log = get_logger("tether.sync")

DEPTH = 2  # batches a sync keeps in the store process: the one being written and the next
# Resources a batch (pages already arrived). Half the database threads' WRITE_BATCH: SQLite's
# write costs the same per row in batches of 1,000 or 2,000 (no round trips to amortise), and
# a smaller batch starts the first write sooner and leaves less to write after the last page.
# The sync benchmark at page 1000, 2026-12-06, 18 rounds each alternated: ratio median 1.32
# against 1.39 (PostgreSQL's threads went the other way: 1.21 against 1.14; they keep 2,000).
BATCH = 1000
CLOSE_TIMEOUT = 10.0  # seconds each step of a close may wait (the process, then its threads)
RESTART_AFTER = 5.0  # seconds between two starts: a process that cannot stay up fails fast


class StoreFailed(Exception):
    """The store process could not write a batch (its database refused, or it died)."""


class StoreProcess:
    """The worker's side of the store process; :meth:`submit` may be called from any thread."""

    def __init__(self, database_url: str) -> None:
        path = database_file(database_url)
        if path is None:
            raise ValueError("the store process writes to a SQLite file")
        self.path = path
        self._lock = threading.Lock()
        self._current: _Link | None = None
        self._started = -RESTART_AFTER  # monotonic time of the last start
        self._closed = False

    def submit(
        self,
        *,
        connection_pk: int,
        epoch: int,
        member_id: str,
        rows: Sequence[PreparedRow],
        clock_offset: float | None = None,
    ) -> Future[Counter[str]]:
        """Queue one fenced write of ``rows``; the future gives what was stored per type, or
        raises :class:`~tether.errors.Fenced` or :class:`StoreFailed`. ``clock_offset``:
        seconds the worker's clock is ahead of the system's (None: the system's clock)."""
        document = orjson.dumps(
            [connection_pk, epoch, member_id, clock_offset, store_child.wire_rows(rows)]
        )
        future: Future[Counter[str]] = Future()
        self._send(document, future)
        return future

    def warm(self) -> None:
        """Start the process now and wait until it answers (else the first write does)."""
        future: Future[Counter[str]] = Future()
        self._send(b"[]", future)
        future.result()

    def _send(self, document: bytes, future: Future[Counter[str]]) -> None:
        future.set_running_or_notify_cancel()  # once sent it will be written: no cancelling
        with self._lock:
            if self._closed:
                future.set_exception(StoreFailed("the store process is closed"))
                return
            if self._current is None or self._current.dead:
                now = time.monotonic()
                if now - self._started < RESTART_AFTER:  # it died at once: not again so soon
                    future.set_exception(StoreFailed("the store process keeps stopping"))
                    return
                self._started = now
                self._current = _Link.start(self.path)
            self._current.send(document, future)

    def waiting(self) -> int:
        """Writes the process has been sent and not answered yet."""
        link = self._current
        return link.waiting() if link is not None else 0

    def pid(self) -> int | None:
        """The running process's id (None before the first write)."""
        link = self._current
        return link.process.pid if link is not None and not link.dead else None

    def close(self) -> None:
        """Let the process finish the writes it has taken, then stop it (none starts after)."""
        with self._lock:
            link, self._current, self._closed = self._current, None, True
        if link is not None:
            link.close()


class _Link:
    """One store process and the two threads that talk to it: a sender, so that no caller
    waits while the process is busy, and a reader that settles the futures in order."""

    def __init__(self, process: subprocess.Popen[bytes], out: Pipe, back: Pipe):
        self.process = process
        self._out, self._back = out, back
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._waiting: deque[Future[Counter[str]]] = deque()
        self._lock = threading.Lock()
        self.dead = False
        self._closing = False
        self._sender = threading.Thread(target=self._send_all, name="store-send", daemon=True)
        self._reader = threading.Thread(target=self._read_all, name="store-read", daemon=True)
        self._sender.start()
        self._reader.start()

    @classmethod
    def start(cls, path: str) -> _Link:
        # A plain ``python -m``, not multiprocessing's spawn: that would run the worker's own
        # main script first (the ``tether`` command imports the whole application).
        # -P: the worker's working directory is not on the child's import path.
        requests_in, requests_out = os.pipe()
        answers_in, answers_out = os.pipe()
        try:
            process = subprocess.Popen(  # noqa: S603 (our interpreter, our module)
                [sys.executable, "-P", "-m", store_child.__name__, path]
                + [str(fd) for fd in (requests_in, answers_out, os.getpid())],
                pass_fds=(requests_in, answers_out),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            os.close(requests_out)
            os.close(answers_in)
            raise
        finally:
            os.close(requests_in)  # the child's ends: the parent keeps only its own
            os.close(answers_out)
        log.info("store process started", pid=process.pid)
        return cls(process, Pipe(requests_out, readable=False), Pipe(answers_in, writable=False))

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def send(self, document: bytes, future: Future[Counter[str]]) -> None:
        with self._lock:
            if self.dead:
                future.set_exception(StoreFailed("the store process has stopped"))
                return
            self._waiting.append(future)  # in the order the process will answer
            self._outbox.put(document)

    def _send_all(self) -> None:
        try:
            while (document := self._outbox.get()) is not None:
                self._out.send_bytes(document)
        except OSError:
            pass  # the process is gone: the reader fails what waits
        finally:
            self._out.close()  # end of file for the process: it finishes and exits

    def _read_all(self) -> None:
        try:
            while True:
                answer = orjson.loads(self._back.recv_bytes())
                with self._lock:
                    future = self._waiting.popleft()
                if "written" in answer:
                    future.set_result(Counter(answer["written"]))
                elif answer.get("fenced"):
                    future.set_exception(Fenced())
                else:
                    future.set_exception(StoreFailed(answer.get("error", "unknown")))
        except (EOFError, OSError):
            pass  # the process has ended (or been closed)
        except Exception:  # an answer that cannot be read: stop the process, fail what waits
            log.exception("store process answered something unreadable", pid=self.process.pid)
        finally:
            # The process is gone (killed if not) before anything waiting fails, and before a
            # new one may start: no batch of a failed write is written behind its back.
            self._outbox.put(None)
            self._back.close()
            if self.process.poll() is None and not self._closing:
                self.process.kill()
            self._reap()
            with self._lock:
                self.dead = True
                waiting = list(self._waiting)
                self._waiting.clear()
            for future in waiting:
                future.set_exception(StoreFailed("the store process has stopped"))
            if waiting:
                log.error("store process stopped", pid=self.process.pid, lost=len(waiting))

    def _reap(self) -> None:
        """Wait for the process (no zombie is left behind), killing it if it will not end."""
        try:
            self.process.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self._closing = True
        self._outbox.put(None)
        self._sender.join(CLOSE_TIMEOUT)
        self._reap()
        self._reader.join(CLOSE_TIMEOUT)
