"""Directory operations: import (upsert in batches), getDataSource and searchDataSources.

Search is by name or alias word prefix (every query word must match the start of some word),
optionally filtered by type and by place: ``near`` is a 5-digit ZIP code (its centroid, from the
``zipcodes`` package) or ``lat,lon``, with ``radius`` in miles. Word prefixes are range scans on
the primary key of ``data_source_terms``, so a search stays fast at tens of thousands of sources.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from tether.directory.index import INDEXES
from tether.directory.schema import PROFILE_FIELDS, SourceEntry
from tether.directory.text import terms_for, words
from tether.domain import SourceType
from tether.errors import InvalidRequest, NotFound
from tether.runtime import Runtime
from tether.sealed import client_secret_binding
from tether.store.db import upsert_insert
from tether.store.models import DataSource, DataSourceTerm, utcnow
from tether.vault import Vault

IMPORT_BATCH = 1000
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
DEFAULT_RADIUS_MILES = 25.0
MAX_RADIUS_MILES = 500.0
MAX_QUERY_WORDS = 6


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    radius: float


@dataclass(frozen=True)
class SearchPage:
    items: list[DataSource]
    total: int
    limit: int
    offset: int
    distances: dict[str, float]


def import_sources(
    session: Session,
    entries: Sequence[SourceEntry],
    *,
    vault: Vault,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Upsert ``entries`` (and their search terms) in batches; returns how many were written."""
    written = 0
    for start in range(0, len(entries), IMPORT_BATCH):
        batch = entries[start : start + IMPORT_BATCH]
        _upsert_batch(session, batch, vault)
        written += len(batch)
        if progress:
            progress(len(batch))
    return written


def _row(entry: SourceEntry, vault: Vault) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "sync_interval": entry.sync_interval,
        "max_concurrent_requests": entry.max_concurrent_requests,
        "max_requests_per_minute": entry.max_requests_per_minute,
    }
    if entry.resource_types:
        settings["resource_types"] = entry.resource_types
    settings.update(entry.model_dump(include=set(PROFILE_FIELDS)))
    if entry.basic_auth:
        settings["basic_auth"] = entry.basic_auth
    if entry.oauth:
        oauth = entry.oauth.model_dump(exclude={"client_secret"})
        if entry.oauth.client_secret:
            # Client secrets are sealed like tokens, bound to their source.
            oauth["client_secret"] = vault.encrypt(
                entry.oauth.client_secret, binding=client_secret_binding(entry.id)
            )
        settings["oauth"] = oauth
    address = entry.address
    return {
        "id": entry.id,
        "name": entry.name,
        "sort_name": " ".join(words(entry.name)),
        "category": entry.category.value,
        "type": entry.type.value,
        "aliases": entry.aliases,
        "address": address.line if address else None,
        "city": address.city if address else None,
        "state": address.state if address else None,
        "zip": address.zip[:5] if address and address.zip else None,
        "lat": entry.location.lat if entry.location else None,
        "lon": entry.location.lon if entry.location else None,
        "fhir_base_url": entry.fhir_base_url,
        "settings": settings,
        "retired": entry.retired,
        "updated_at": utcnow(),
    }


def _upsert_batch(session: Session, batch: Sequence[SourceEntry], vault: Vault) -> None:
    rows = [_row(entry, vault) for entry in batch]
    statement = upsert_insert(session, DataSource)
    updatable = {c: statement.excluded[c] for c in rows[0] if c != "id"}
    session.execute(statement.on_conflict_do_update(index_elements=["id"], set_=updatable), rows)
    ids = [row["id"] for row in rows]
    session.execute(delete(DataSourceTerm).where(DataSourceTerm.source_id.in_(ids)))
    terms = [
        {"term": term, "source_id": entry.id}
        for entry in batch
        for term in terms_for(entry.name, entry.aliases)
    ]
    if terms:
        session.execute(insert(DataSourceTerm), terms)


def get_data_source(session: Session, source_id: str) -> DataSource:
    source = session.get(DataSource, source_id)
    if source is None:
        raise NotFound(f"no data source {source_id!r}", code="UNKNOWN_DATA_SOURCE")
    return source


def parse_near(near: str | None, radius: float | None) -> Near | None:
    """``near`` is a 5-digit ZIP code or ``lat,lon``; ``radius`` is in miles."""
    if radius is not None and not 0 < radius <= MAX_RADIUS_MILES:
        raise InvalidRequest(f"radius must be between 0 and {MAX_RADIUS_MILES:g} miles")
    if not near:
        if radius is not None:
            raise InvalidRequest("radius needs near")
        return None
    miles = radius or DEFAULT_RADIUS_MILES
    near = near.strip()
    if near.isdigit() and len(near) == 5:
        import zipcodes

        try:
            found = zipcodes.matching(near)
        except (ValueError, TypeError):
            found = []
        if not found:
            raise InvalidRequest(f"unknown ZIP code {near!r}")
        return Near(float(found[0]["lat"]), float(found[0]["long"]), miles)
    parts = near.split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise InvalidRequest("near must be a 5-digit ZIP code or 'lat,lon'") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidRequest("near: latitude or longitude out of range")
    return Near(lat, lon, miles)


def search_data_sources(
    session: Session,
    *,
    query: str | None = None,
    source_type: SourceType | None = None,
    near: Near | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> SearchPage:
    """Search live sources by name/alias word prefixes, type and place (see ``index.py``)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidRequest("offset must not be negative")
    query_words = words(query or "")
    if len(query_words) > MAX_QUERY_WORDS:
        raise InvalidRequest(f"a query may have at most {MAX_QUERY_WORDS} words")
    index = INDEXES.get(session)
    kind = source_type.value if source_type else None
    if near is not None:
        hits, total = index.near(query_words, kind, near.lat, near.lon, near.radius, limit, offset)
    else:
        hits, total = index.page(query_words, kind, limit, offset)
    distances = {h.source_id: h.distance for h in hits if h.distance is not None}
    return SearchPage(_load(session, [h.source_id for h in hits]), total, limit, offset, distances)


def _load(session: Session, ids: Sequence[str]) -> list[DataSource]:
    if not ids:
        return []
    found = {s.id: s for s in session.scalars(select(DataSource).where(DataSource.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def search(
    runtime: Runtime,
    *,
    query: str | None = None,
    source_type: SourceType | None = None,
    near: Near | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> SearchPage:
    """searchDataSources (see :func:`search_data_sources`); the page's sources are read-only."""
    with runtime.db.read() as session:
        return search_data_sources(
            session, query=query, source_type=source_type, near=near, limit=limit, offset=offset
        )


def data_source(runtime: Runtime, *, connection_id: str) -> DataSource:
    """getDataSource: one entry of the directory (404 when there is none)."""
    with runtime.db.read() as session:
        return get_data_source(session, connection_id)
