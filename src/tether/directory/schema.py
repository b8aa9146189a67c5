"""The directory file's format, validated with errors that name the bad entry.

A file (YAML or JSON) is either a list of entries or ``{"sources": [...]}``. See
``docs/directory.md`` for every field. ``{sandbox}`` in a URL stands for this tether's sandbox
mount (``<public base URL>/sandbox``) and is resolved when the URL is used, so the same file
works whatever host and port tether runs on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tether.domain import (
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_REQUESTS_PER_MINUTE,
    REFERENCED_TYPES,
    Category,
    SourceType,
)
from tether.errors import InvalidRequest

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$"
BUNDLED_DIRECTORY = Path(__file__).parent / "default_sources.yaml"

DEFAULT_SCOPES = "launch/patient openid fhirUser offline_access patient/*.read"
RESOURCE_TYPE_PATTERN = r"^[A-Z][A-Za-z]{1,63}$"
# Search parameters tether sets itself on every search (the patient, paging, the cursor).
RESERVED_SEARCH_PARAMS = frozenset({"patient", "subject", "_id", "_count", "_lastUpdated"})
# Authorization request parameters tether sets itself (RFC 6749 §4.1.1, RFC 7636, SMART).
RESERVED_AUTHORIZE_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "aud",
    }
)

# The entry's fields that say how the source bends the standard: kept in the source's settings
# as they are (tether.connections.sources.SourceProfile reads them back).
PROFILE_FIELDS = frozenset(
    {
        "fhir_accept",
        "send_aud",
        "page_size",
        "search_params",
        "use_last_updated",
        "extra_authorize_params",
        "referenced_types",
        "authorization_lifetime",
    }
)


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = Field(default=None, pattern=r"^\d{5}(-\d{4})?$")


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class OAuthClient(BaseModel):
    """How tether authenticates to the source's authorization server.

    ``private_key_jwt`` (SMART "client-confidential-asymmetric", RFC 7523) signs a client
    assertion with tether's own key of ``signing_alg`` (``RS384`` by default, or ``ES384``);
    the source fetches the public key from tether's JWKS URL. It takes no ``client_secret``.
    """

    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    token_endpoint_auth_method: Literal[
        "client_secret_basic", "client_secret_post", "none", "private_key_jwt"
    ] = "client_secret_basic"
    signing_alg: Literal["RS384", "ES384"] | None = None
    scopes: str = DEFAULT_SCOPES

    @model_validator(mode="after")
    def _assertion_settings(self) -> OAuthClient:
        if self.token_endpoint_auth_method == "private_key_jwt":
            if self.client_secret is not None:
                raise ValueError("private_key_jwt signs with tether's key: drop client_secret")
            if self.signing_alg is None:
                self.signing_alg = "RS384"
        elif self.signing_alg is not None:
            raise ValueError("signing_alg is only for token_endpoint_auth_method private_key_jwt")
        return self


class SourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    category: Category = Category.OAUTH
    type: SourceType
    aliases: list[str] = Field(default_factory=list)
    address: Address | None = None
    location: Location | None = None
    fhir_base_url: str | None = None
    oauth: OAuthClient | None = None
    basic_auth: Literal["password_grant", "http_basic"] | None = None
    resource_types: list[str] | None = None
    sync_interval: int = Field(default=86400, ge=60)
    # How this source bends the standard (docs/directory.md, "Source profiles").
    fhir_accept: Literal["application/fhir+json", "application/json+fhir", "application/json"] = (
        "application/fhir+json"
    )
    send_aud: bool = True
    page_size: int | None = Field(default=None, ge=1, le=1000)
    search_params: dict[str, list[dict[str, str]]] | None = None
    use_last_updated: bool = True
    extra_authorize_params: dict[str, str] = Field(default_factory=dict)
    referenced_types: list[str] = Field(default_factory=lambda: list(REFERENCED_TYPES))
    # Seconds a grant lasts at this source when its token responses do not say
    # (refresh_token_expires_in wins); None: tether does not know.
    authorization_lifetime: int | None = Field(default=None, ge=3600, le=20 * 365 * 86400)
    # The source's request budget, held across every sync and worker process (tether.sync.budgets).
    max_concurrent_requests: int = Field(default=DEFAULT_MAX_CONCURRENT_REQUESTS, ge=1, le=1000)
    max_requests_per_minute: int = Field(
        default=DEFAULT_MAX_REQUESTS_PER_MINUTE, ge=1, le=1_000_000
    )
    retired: bool = False

    @field_validator("resource_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        for rtype in value or ():
            if not re.match(RESOURCE_TYPE_PATTERN, rtype):
                raise ValueError(f"{rtype!r} is not a FHIR resource type")
        return list(dict.fromkeys(value)) if value is not None else None

    @field_validator("referenced_types")
    @classmethod
    def _referenced(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in REFERENCED_TYPES]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: tether follows references to "
                f"{', '.join(REFERENCED_TYPES)} only"
            )
        return list(dict.fromkeys(value))

    @field_validator("search_params")
    @classmethod
    def _search_params(
        cls, value: dict[str, list[dict[str, str]]] | None
    ) -> dict[str, list[dict[str, str]]] | None:
        for rtype, sets in (value or {}).items():
            if not re.match(RESOURCE_TYPE_PATTERN, rtype):
                raise ValueError(f"{rtype!r} is not a FHIR resource type")
            if not sets:
                raise ValueError(f"{rtype}: give at least one parameter set (or leave it out)")
            for params in sets:
                reserved = sorted(RESERVED_SEARCH_PARAMS & params.keys())
                if reserved:
                    raise ValueError(f"{rtype}: tether sets {', '.join(reserved)} itself")
                if any(not name or not v for name, v in params.items()):
                    raise ValueError(f"{rtype}: parameter names and values cannot be empty")
        return value

    @field_validator("extra_authorize_params")
    @classmethod
    def _authorize_params(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(RESERVED_AUTHORIZE_PARAMS & value.keys())
        if reserved:
            raise ValueError(f"tether sets {', '.join(reserved)} itself")
        return value

    @field_validator("fhir_base_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "{sandbox}")):
            raise ValueError("must be an absolute http(s) URL or start with {sandbox}")
        return value.rstrip("/") if value else value


def parse_entries(raw: Any) -> Iterator[SourceEntry]:
    """Validate raw entries one by one; the first bad one raises, naming itself."""
    items = raw.get("sources") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise InvalidRequest("a directory file is a list of sources or {sources: [...]}")
    seen: set[str] = set()
    for index, item in enumerate(items):
        label = f"entry {index + 1}"
        if isinstance(item, dict) and "id" in item:
            label += f" (id {item['id']!r})"
        try:
            entry = SourceEntry.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InvalidRequest(f"{label}: {problems}") from None
        if entry.id in seen:
            raise InvalidRequest(f"{label}: duplicate id {entry.id!r}")
        seen.add(entry.id)
        if (
            entry.category == Category.OAUTH
            and not entry.retired
            and (entry.oauth is None or entry.fhir_base_url is None)
        ):
            raise InvalidRequest(f"{label}: an OAUTH source needs fhir_base_url and oauth")
        yield entry


def load_file(path: Path) -> list[SourceEntry]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidRequest(f"cannot read directory file {path}: {exc.strerror}") from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = path.suffix.lstrip(".") or "YAML"
        raise InvalidRequest(f"{path} is not valid {kind}: {exc}") from exc
    return list(parse_entries(raw))
