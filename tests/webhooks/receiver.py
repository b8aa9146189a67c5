"""A webhook receiver on loopback: records every request, answers as the test scripts it, and
checks signatures with the Standard Webhooks reference library (not tether's code)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int | None = None

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def type(self) -> str:
        return str(self.payload["type"])


@dataclass
class Receiver:
    """``script``: answers for the next requests in order (an int status, or a callable that
    returns one — it may block to hang); then ``default``."""

    server: ThreadingHTTPServer
    script: list[int | Callable[[], int]] = field(default_factory=list)
    default: int = 200
    received: list[Received] = field(default_factory=list)
    headers_out: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def delivered(self) -> list[Received]:
        """Requests answered 2xx."""
        with self.lock:
            return [r for r in self.received if r.answered and 200 <= r.answered < 300]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.delivered()) < count:
            assert time.monotonic() < deadline, (
                f"{len(self.delivered())} of {count} deliveries arrived: "
                f"{[(r.type, r.answered) for r in self.received]}"
            )
            time.sleep(0.02)
        return self.delivered()

    def verify(self, secret: str, item: Received) -> dict[str, Any]:
        """The reference verifier's answer (raises on a bad signature or timestamp)."""
        result: dict[str, Any] = Webhook(secret).verify(item.body, item.headers)
        return result

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_receiver(port: int = 0) -> Receiver:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = holder["r"]
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            item = Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
            with receiver.lock:
                receiver.received.append(item)
                step = receiver.script.pop(0) if receiver.script else receiver.default
            status = step() if callable(step) else step
            item.answered = status
            try:
                self.send_response(status)
                for name, value in receiver.headers_out.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up (timeout)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    holder["r"] = receiver
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
