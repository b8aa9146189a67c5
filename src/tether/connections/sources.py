"""What the connection services need to know about a data source, resolved for use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tether.directory.schema import DEFAULT_SCOPES
from tether.domain import FHIR_MEDIA_TYPES, REFERENCED_TYPES, RESOURCE_TYPES, Category
from tether.errors import AccessEnded, Conflict, NotFound
from tether.oauth import rfc6749, rfc7523
from tether.oauth.rfc6749 import ClientSettings, OAuth2Client
from tether.oauth.scopes import searchable_types
from tether.oauth.smart_discovery import DiscoveryCache, SmartConfiguration, require_client_auth
from tether.runtime import Runtime
from tether.sealed import client_secret_binding
from tether.signing import assertion_key
from tether.store.models import DataSource

SANDBOX_PLACEHOLDER = "{sandbox}"


def fhir_base_url(runtime: Runtime, source: DataSource) -> str:
    """The source's FHIR base with ``{sandbox}`` resolved against this tether's public URL."""
    if not source.fhir_base_url:
        raise Conflict(f"data source {source.id!r} has no FHIR endpoint", code="NOT_CONNECTABLE")
    return source.fhir_base_url.replace(SANDBOX_PLACEHOLDER, runtime.settings.sandbox_url)


@dataclass(frozen=True)
class SourceProfile:
    """How a source bends the standard, from its directory entry (docs/directory.md, "Source
    profiles"); every field's default is the standard's way."""

    accept: str = FHIR_MEDIA_TYPES[0]
    send_aud: bool = True
    page_size: int | None = None
    # Per resource type, the parameter sets to search it by: one search each.
    search_params: Mapping[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)
    use_last_updated: bool = True
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    referenced_types: tuple[str, ...] = REFERENCED_TYPES
    authorization_lifetime: int | None = None

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> SourceProfile:
        s = settings or {}
        referenced = s.get("referenced_types")
        return cls(
            accept=s.get("fhir_accept") or FHIR_MEDIA_TYPES[0],
            send_aud=bool(s.get("send_aud", True)),
            page_size=s.get("page_size"),
            search_params={
                rtype: tuple(dict(p) for p in sets)
                for rtype, sets in (s.get("search_params") or {}).items()
            },
            use_last_updated=bool(s.get("use_last_updated", True)),
            extra_authorize_params=dict(s.get("extra_authorize_params") or {}),
            referenced_types=REFERENCED_TYPES if referenced is None else tuple(referenced),
            authorization_lifetime=s.get("authorization_lifetime"),
        )


def source_types(source: DataSource) -> tuple[str, ...]:
    """The resource types tether searches at ``source``, in order."""
    return tuple((source.settings or {}).get("resource_types") or RESOURCE_TYPES)


def shared_types(source: DataSource, scope: str | None) -> tuple[str, ...]:
    """The source's types that the granted ``scope`` lets tether search."""
    return searchable_types(scope, source_types(source))


def not_shared_types(source: DataSource, scope: str | None) -> tuple[str, ...]:
    """The source's types the member did not share (a narrower grant than asked)."""
    shared = set(shared_types(source, scope))
    return tuple(t for t in source_types(source) if t not in shared)


def client_settings(runtime: Runtime, source: DataSource) -> ClientSettings:
    oauth = (source.settings or {}).get("oauth")
    if not oauth:
        raise Conflict(f"data source {source.id!r} has no OAuth client", code="NOT_CONNECTABLE")
    sealed = oauth.get("client_secret")
    secret = (
        runtime.vault.decrypt(sealed, binding=client_secret_binding(source.id)) if sealed else None
    )
    method = oauth.get("token_endpoint_auth_method", "client_secret_basic")
    return ClientSettings(
        client_id=oauth["client_id"],
        client_secret=secret,
        token_endpoint_auth_method=method,
        scopes=oauth.get("scopes", DEFAULT_SCOPES),
        assertion_key=assertion_key(runtime, alg=oauth.get("signing_alg") or "RS384")
        if method == rfc7523.METHOD
        else None,
    )


def require_connectable(source: DataSource | None, source_id: str) -> DataSource:
    """The source a member may (re-)establish an OAuth connection to, or a clear error."""
    if source is None:
        raise NotFound(f"no data source {source_id!r}", code="UNKNOWN_DATA_SOURCE")
    if source.retired:
        raise AccessEnded(
            f"{source.name} is no longer available; access has ended", code="ACCESS_ENDED"
        )
    if source.category != Category.OAUTH:
        raise Conflict(
            f"{source.name} is a {source.category} source: use createConnection",
            code="WRONG_CATEGORY",
        )
    return source


DISCOVERY = DiscoveryCache()


@contextmanager
def smart_client(
    runtime: Runtime, source: DataSource
) -> Iterator[tuple[OAuth2Client, SmartConfiguration, str]]:
    """An Authlib client for ``source`` plus its (cached) SMART configuration and FHIR base.

    Raises :class:`~tether.errors.SourceIncompatible` when the source's discovery lists its
    token endpoint's authentication methods without the one the directory names.
    """
    base = fhir_base_url(runtime, source)
    settings = client_settings(runtime, source)
    with runtime.http_client(source=source.id) as http:
        config = DISCOVERY.get(http, base)
    require_client_auth(config, settings.token_endpoint_auth_method)
    with rfc6749.oauth_client(
        settings,
        redirect_uri=runtime.settings.callback_url,
        token_endpoint=config.token_endpoint,
        transport=runtime.outbound_transport(source.id),
        timeout=runtime.outbound_timeout,
    ) as client:
        yield client, config, base
