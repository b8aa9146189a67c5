"""What the connection services need to know about a data source, resolved for use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tether.directory.schema import DEFAULT_SCOPES
from tether.domain import Category
from tether.errors import AccessEnded, Conflict, NotFound
from tether.oauth import rfc6749, rfc7523
from tether.oauth.rfc6749 import ClientSettings, OAuth2Client
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
