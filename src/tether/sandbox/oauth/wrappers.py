"""Starlette ⇄ Authlib request/response wrappers (Authlib's framework-neutral server).

Authlib's ``AuthorizationServer`` asks a framework integration for an ``OAuth2Request``
and gives back ``(status, body, headers)``; these two adapters are that integration.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from starlette.responses import Response

Pairs = Sequence[tuple[str, str]]


class PairsPayload(OAuth2Payload):
    """Query and form parameters; ``datalist`` keeps repeats so Authlib can refuse them."""

    def __init__(self, pairs: Pairs) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class SandboxOAuth2Request(OAuth2Request):
    """An already-read HTTP request (Starlette reads bodies asynchronously)."""

    def __init__(
        self, *, method: str, uri: str, headers: Mapping[str, str], query: Pairs, form: Pairs
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(query)
        self._form = dict(form)
        self.payload = PairsPayload([*query, *form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def to_response(status: int, body: Any, headers: Sequence[tuple[str, str]]) -> Response:
    """Authlib's ``(status, body, headers)`` as a Starlette response."""
    content = json.dumps(body) if isinstance(body, dict) else (body or "")
    response = Response(content, status_code=status)
    for name, value in headers:
        response.headers[name] = value
    return response
