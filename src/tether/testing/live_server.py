"""Run an ASGI app under uvicorn in a background thread, on a free loopback port.

Tests use this to talk to tether (and the sandbox) over real HTTP instead of an
in-process transport, so redirects, headers and timeouts behave as they do in
production.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """A uvicorn server running in a daemon thread.

    Without a ``port``, the server's socket is bound here, to a port the system picks, and
    handed to uvicorn: a port found free and bound later could be taken in between by any
    other process on the machine (it happened in CI: "address already in use")."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self._socket: socket.socket | None = None
        if port is None:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, 0))
            port = int(self._socket.getsockname()[1])
        self.port = port
        config = uvicorn.Config(
            app, host=host, port=self.port, log_config=None, lifespan="on", access_log=False
        )
        self._server = uvicorn.Server(config)
        sockets = [self._socket] if self._socket is not None else None
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": sockets}, name="live-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("live server thread exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("live server did not start in time")
            time.sleep(0.01)

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()


@contextmanager
def serve(app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> Iterator[LiveServer]:
    """Serve ``app`` on loopback for the duration of the ``with`` block."""
    server = LiveServer(app, host=host, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
