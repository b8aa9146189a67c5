"""Checks made before any request, matching what the server accepts.

The connection-id pattern is the directory's slug pattern (``tether.directory.schema``); it is
repeated here, not imported, so the SDK needs nothing of the server. A test pins the two equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import TypeVar

from tether.client._exceptions import client_validation_error

CONNECTION_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$"
# The path pattern of GET /v1/fhir/{resourceType}.
RESOURCE_TYPE_PATTERN = r"^[A-Z][A-Za-z]{1,63}$"
# Member ids are ``mem_<hex>``; any id made of these characters is safe in a path.
MEMBER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"

_CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)
_RESOURCE_TYPE = re.compile(RESOURCE_TYPE_PATTERN)
_MEMBER_ID = re.compile(MEMBER_ID_PATTERN)

E = TypeVar("E", bound=StrEnum)


def connection_id(value: object) -> str:
    """A connection id is a data source's id: a lowercase slug such as ``sandbox-clinic``."""
    if not isinstance(value, str) or not value:
        raise client_validation_error("connection id must be a non-empty string")
    if not _CONNECTION_ID.fullmatch(value):
        raise client_validation_error(
            f"connection id {value!r} is not a data source id (lowercase letters, digits and "
            "hyphens, at most 100 characters, such as 'sandbox-clinic')"
        )
    return value


def credential(name: str, value: object) -> str:
    """A portal username or password for createConnection: 1-500 characters."""
    if not isinstance(value, str) or not value:
        raise client_validation_error(f"{name} must be a non-empty string")
    if len(value) > 500:
        raise client_validation_error(f"{name} is longer than 500 characters")
    return value


def member_id(value: object) -> str:
    if not isinstance(value, str) or not _MEMBER_ID.fullmatch(value):
        raise client_validation_error(f"member id {value!r} is malformed")
    return value


def resource_type(value: object) -> str:
    if not isinstance(value, str) or not _RESOURCE_TYPE.fullmatch(value):
        raise client_validation_error(
            f"resource type {value!r} is not a FHIR resource type name such as 'Observation'"
        )
    return value


def enum_values(name: str, enum: type[E], value: E | str | Iterable[E | str] | None) -> list[str]:
    """A filter given as one value or several, each checked against ``enum``."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        try:
            out.append(enum(item).value)
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise client_validation_error(f"{name}: {item!r} is not one of {allowed}") from None
    return out
