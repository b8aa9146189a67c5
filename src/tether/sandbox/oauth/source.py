"""What the grants and endpoints need from the source's authorization server.

A small Protocol, so ``grants`` and ``endpoints`` do not import ``server`` (which imports them
to register them): the import graph stays a tree.
"""

from __future__ import annotations

from typing import Protocol

from tether.sandbox.oauth.models import PatientGrant
from tether.sandbox.store import GrantStore


class SourceServer(Protocol):
    """One sandbox source's authorization server, as its grants and endpoints see it."""

    source_id: str
    store: GrantStore
    code_lifetime: int
    reject_aud: bool

    @property
    def issuer(self) -> str: ...

    @property
    def fhir_base_url(self) -> str: ...

    def portal_user(self, username: str, password: str) -> PatientGrant | None: ...
