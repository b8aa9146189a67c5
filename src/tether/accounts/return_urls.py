"""What a tenant may register: return URLs (RFC 8252 §7) and browser origins (RFC 6454).

A return URL is where the member's browser lands after the OAuth callback, with
``status_code`` and ``connectionId`` added to its query. It is one of

- ``https://host[:port]/path`` — a web app, or a native app's claimed link (Android App Links,
  iOS Universal Links; RFC 8252 §7.2);
- ``http://`` on a loopback host (``127.0.0.1``, ``[::1]``, ``localhost``) — development and
  desktop apps (RFC 8252 §7.3); any other ``http`` host is refused;
- a private-use scheme in reverse-domain form, ``com.example.app:/path`` (RFC 8252 §7.1) — the
  scheme must contain a dot, so ``javascript:``, ``data:``, ``file:`` and every other scheme
  without one are refused.

None may carry a fragment (RFC 6749 §3.1.2), user information, whitespace or control
characters. A browser origin is ``scheme://host[:port]`` with no path (``https://app.example``,
``capacitor://localhost``), never ``*``.

Every entry point (the CLI, ``PATCH /v1/tenant``, getOauthUrl's ``returnUrl``) goes through
:func:`check_return_url`, so the rules live here only. Errors are 400 problems whose ``field``
names the offending input (``returnUrls[2]``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import SplitResult, urlsplit

from tether.errors import InvalidRequest

MAX_URLS = 20  # per list: return URLs, browser origins
MAX_URL_LENGTH = 2000
MAX_NAME_LENGTH = 200
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
REFUSED_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about"})
# RFC 8252 §7.1: a reverse domain name the app controls, e.g. com.example.app
PRIVATE_SCHEME_RE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$")
ORIGIN_RE = re.compile(r"^[a-z][a-z0-9+.\-]*://[^/?#\s@]+$")
_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f\\]")


def _invalid(field: str, message: str, code: str = "INVALID_FIELD") -> InvalidRequest:
    return InvalidRequest(f"{field}: {message}", code=code, field=field)


def _split(url: object, field: str) -> SplitResult:
    if not isinstance(url, str) or not url:
        raise _invalid(field, "must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(field, f"is longer than {MAX_URL_LENGTH} characters")
    if _UNSAFE_CHARS.search(url):
        raise _invalid(field, "contains whitespace, a backslash or a control character")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise _invalid(field, f"{url!r} is not a well-formed URL") from None
    return parts


def check_return_url(url: object, *, field: str = "returnUrl") -> str:
    """``url`` when RFC 8252 §7 allows it as a return URL (see the module's docstring);
    otherwise a 400 problem naming ``field``."""
    parts = _split(url, field)
    assert isinstance(url, str)
    scheme = parts.scheme
    if not scheme or not url.lower().startswith(scheme + ":"):
        raise _invalid(field, f"{url!r} is not an absolute URL", "RETURN_URL_INVALID")
    if scheme in REFUSED_SCHEMES:
        raise _invalid(field, f"the {scheme}: scheme is not allowed", "RETURN_URL_INVALID")
    if parts.fragment or "#" in url:
        raise _invalid(field, "must not have a fragment", "RETURN_URL_INVALID")
    if "@" in parts.netloc:
        raise _invalid(field, "must not carry user information", "RETURN_URL_INVALID")
    host = (parts.hostname or "").lower()
    if scheme == "https":
        if not host:
            raise _invalid(field, "an https URL needs a host", "RETURN_URL_INVALID")
    elif scheme == "http":
        if host not in LOOPBACK_HOSTS:
            raise _invalid(
                field,
                "http is only allowed on a loopback host (127.0.0.1, [::1], localhost); use https",
                "RETURN_URL_INVALID",
            )
    elif PRIVATE_SCHEME_RE.match(scheme):
        if not (parts.netloc or parts.path):
            raise _invalid(field, "a private-use URL needs a path", "RETURN_URL_INVALID")
    else:
        raise _invalid(
            field,
            f"the {scheme}: scheme is not allowed: use https, loopback http, or a "
            "private-use scheme in reverse-domain form (com.example.app:/path)",
            "RETURN_URL_INVALID",
        )
    return url


def check_origin(origin: object, *, field: str = "allowedOrigin") -> str:
    """A browser origin as browsers send it (lower-case, no trailing slash, no default
    port); a 400 problem naming ``field`` otherwise."""
    parts = _split(origin, field)
    assert isinstance(origin, str)
    value = origin.rstrip("/")
    if not ORIGIN_RE.match(value.lower()) or parts.path not in ("", "/") or parts.query:
        raise _invalid(
            field,
            f"{origin!r} is not an origin (scheme://host[:port], no path)",
            "ORIGIN_INVALID",
        )
    if parts.scheme in REFUSED_SCHEMES:
        raise _invalid(field, f"the {parts.scheme}: scheme is not allowed", "ORIGIN_INVALID")
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = value.split("://", 1)[1].lower()
    if default is not None and parts.port == default:
        host = host.rsplit(":", 1)[0]
    return f"{parts.scheme}://{host}"


def _check_list(values: object, field: str, check: Callable[..., str]) -> list[str]:
    if not isinstance(values, list | tuple):
        raise _invalid(field, "must be a list")
    if len(values) > MAX_URLS:
        raise _invalid(field, f"at most {MAX_URLS} entries are allowed", "TOO_MANY")
    seen: set[str] = set()
    checked = []
    for index, value in enumerate(values):
        where = f"{field}[{index}]"
        entry = check(value, field=where)
        if entry in seen:
            raise _invalid(where, f"{entry!r} is listed twice", "DUPLICATE")
        seen.add(entry)
        checked.append(entry)
    return checked


def check_return_urls(urls: object, *, field: str = "returnUrls") -> list[str]:
    """Every URL checked by :func:`check_return_url`, no duplicates, at most ``MAX_URLS``."""
    return _check_list(urls, field, check_return_url)


def check_origins(origins: object, *, field: str = "allowedOrigins") -> list[str]:
    """Every origin checked by :func:`check_origin`, no duplicates, at most ``MAX_URLS``."""
    return _check_list(origins, field, check_origin)


def check_name(name: object, *, field: str = "name") -> str:
    """A tenant's display name: not empty, at most ``MAX_NAME_LENGTH`` characters."""
    if not isinstance(name, str) or not name.strip():
        raise _invalid(field, "must not be empty")
    if len(name.strip()) > MAX_NAME_LENGTH:
        raise _invalid(field, f"is longer than {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _invalid(field, "contains a control character")
    return name.strip()
