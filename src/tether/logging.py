"""Structured JSON logs (structlog) with a redaction step.

Tokens, authorization codes, ``state``, launch links, OAuth URLs, passwords and Authorization
headers never reach a log line: :func:`redact` masks sensitive keys wholesale and scrubs
sensitive patterns out of every string value (query parameters, bearer tokens, JWT-shaped
strings, ``/oauth/launch/<token>`` paths). It runs as the last processor before rendering, for
tether's own events and for the standard library's (uvicorn, httpx, huey) alike.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

MASK = "[redacted]"

SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "code",
        "state",
        "code_verifier",
        "password",
        "client_secret",
        "client_assertion",
        "private_key",
        "secret",
        "authorization",
        "cookie",
        "set-cookie",
        "redirect_url",
        "redirecturl",
        "launch_url",
        "authorize_url",
        "api_key",
        "credentials",
        "refresh-token",
        "x-sandbox-admin-secret",
        "location",
    }
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # key=value in query strings and form bodies
    (
        re.compile(
            r"(?i)\b(code|state|access_token|refresh_token|id_token|token|code_verifier|"
            r"client_secret|client_assertion|password|refresh-token)=([^&\s\"']+)"
        ),
        r"\1=" + MASK,
    ),
    # one-time launch links
    (re.compile(r"(/oauth/launch/)[A-Za-z0-9_\-]+"), r"\1" + MASK),
    # Authorization header values
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+"), r"\1 " + MASK),
    # JWT-shaped strings
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), MASK),
    # tether API keys
    (re.compile(r"\btk_[A-Za-z0-9]+_[A-Za-z0-9_\-]+"), MASK),
]


def scrub(text: str) -> str:
    """Remove sensitive patterns from free text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, _key: str | None = None) -> Any:
    """Return ``value`` with sensitive keys masked and sensitive patterns scrubbed."""
    if _key is not None and _key.lower() in SENSITIVE_KEYS and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = redact(event_dict[key], key if key != "event" else None)
    return event_dict


def configure_logging(*, level: str = "INFO", json_output: bool = True) -> None:
    """Route structlog and the standard library through one redacting renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.set_name("tether")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "tether"]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Authlib logs issued tokens at DEBUG ("Issue token %r"); never let that through.
    logging.getLogger("authlib").setLevel(max(logging.INFO, root.level))


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record is written, not as it was when logging
    was configured: test runners and process managers swap it, and a server thread would
    otherwise write to a stream closed since (Python's "--- Logging error ---"). A stream given
    with ``setStream`` is used instead (the benchmarks silence the log that way)."""

    def __init__(self) -> None:
        self._chosen: Any = None
        super().__init__()

    @property
    def stream(self) -> Any:
        return self._chosen if self._chosen is not None else sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        # StreamHandler.__init__ sets the stderr of the moment: keep following it instead.
        self._chosen = None if value is None or value is sys.stderr else value


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
