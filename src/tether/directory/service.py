"""Directory operations: import (upsert in batches), getDataSource and searchDataSources.

Search is by name or alias word prefix (every query word must match the start of some word),
optionally filtered by type and by place: ``near`` is a 5-digit ZIP code (its centroid, from the
``zipcodes`` package) or ``lat,lon``, with ``radius`` in miles. Word prefixes are range scans on
the primary key of ``data_source_terms``, so a search stays fast at tens of thousands of sources.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tether.directory.schema import SourceEntry
from tether.directory.text import prefix_upper_bound, terms_for, words
from tether.domain import SourceType
from tether.errors import InvalidRequest, NotFound
from tether.sealed import client_secret_binding
from tether.store.models import DataSource, DataSourceTerm, utcnow
from tether.vault import Vault

IMPORT_BATCH = 1000
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
DEFAULT_RADIUS_MILES = 25.0
MAX_RADIUS_MILES = 500.0
MAX_QUERY_WORDS = 6
EARTH_RADIUS_MILES = 3958.8
TOTAL_CAP = 1000


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
    total_capped: bool = False


# ---------------------------------------------------------------------------- import
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
    settings: dict[str, Any] = {"sync_interval": entry.sync_interval}
    if entry.resource_types:
        settings["resource_types"] = entry.resource_types
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


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _upsert_batch(session: Session, batch: Sequence[SourceEntry], vault: Vault) -> None:
    insert = _insert(session)
    rows = [_row(entry, vault) for entry in batch]
    statement = insert(DataSource)
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


# ---------------------------------------------------------------------------- read
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


def _distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in miles (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(math.sqrt(a))


def search_data_sources(
    session: Session,
    *,
    query: str | None = None,
    source_type: SourceType | None = None,
    near: Near | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> SearchPage:
    """Search live sources. ``total`` is exact up to :data:`TOTAL_CAP` (``total_capped`` says
    when there are more), so a two-letter prefix matching a fifth of a large directory costs
    a bounded count instead of a full one."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidRequest("offset must not be negative")
    query_words = words(query or "")
    if len(query_words) > MAX_QUERY_WORDS:
        raise InvalidRequest(f"a query may have at most {MAX_QUERY_WORDS} words")
    conditions: list[Any] = [DataSource.retired.is_(False)]
    for word in query_words:
        matching = select(DataSourceTerm.source_id).where(
            DataSourceTerm.term >= word, DataSourceTerm.term < prefix_upper_bound(word)
        )
        conditions.append(DataSource.id.in_(matching))
    if source_type is not None:
        conditions.append(DataSource.type == source_type.value)
    if near is not None:
        return _search_near(session, conditions, near, limit, offset)
    capped = select(DataSource.id).where(*conditions).limit(TOTAL_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(capped)) or 0
    ordering: list[Any] = [DataSource.sort_name, DataSource.id]
    if query_words:
        # Names that start with the query come first.
        starts = " ".join(query_words)
        ordering.insert(0, case((DataSource.sort_name.startswith(starts), 0), else_=1))
    # Order and page over narrow rows, then load only the page's sources.
    ids = list(
        session.scalars(
            select(DataSource.id).where(*conditions).order_by(*ordering).limit(limit).offset(offset)
        )
    )
    return SearchPage(
        _load(session, ids), min(total, TOTAL_CAP), limit, offset, {}, total > TOTAL_CAP
    )


def _load(session: Session, ids: Sequence[str]) -> list[DataSource]:
    if not ids:
        return []
    found = {s.id: s for s in session.scalars(select(DataSource).where(DataSource.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def _search_near(
    session: Session, conditions: list[Any], near: Near, limit: int, offset: int
) -> SearchPage:
    dlat = near.radius / 69.0
    dlon = near.radius / max(1e-6, 69.0 * math.cos(math.radians(near.lat)))
    box = and_(
        DataSource.lat.between(near.lat - dlat, near.lat + dlat),
        or_(
            DataSource.lon.between(near.lon - dlon, near.lon + dlon),
            DataSource.lon.between(near.lon - dlon + 360, near.lon + dlon + 360),
            DataSource.lon.between(near.lon - dlon - 360, near.lon + dlon - 360),
        ),
    )
    candidates = session.execute(
        select(DataSource.id, DataSource.lat, DataSource.lon, DataSource.sort_name).where(
            *conditions, box
        )
    ).all()
    scored = sorted(
        (
            (_distance(near.lat, near.lon, lat, lon), name, sid)
            for sid, lat, lon, name in candidates
            if lat is not None and lon is not None
        ),
    )
    within = [(d, sid) for d, _, sid in scored if d <= near.radius]
    page = within[offset : offset + limit]
    return SearchPage(
        _load(session, [sid for _, sid in page]),
        len(within),
        limit,
        offset,
        {sid: round(d, 2) for d, sid in page},
    )


def all_source_ids(session: Session) -> Iterable[str]:
    return session.scalars(select(DataSource.id).order_by(DataSource.id))
