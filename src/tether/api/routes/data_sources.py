"""searchDataSources and getDataSource (member token or tenant API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tether.api.schemas import DataSourceOut, DataSourcePage, SourceHealthOut
from tether.connections import source_health
from tether.directory import service as directory
from tether.domain import SourceType
from tether.http.deps import AnyCaller, RuntimeDep, TenantCaller
from tether.http.openapi import problems

router = APIRouter(prefix="/v1/data-sources", tags=["data sources"])


@router.get("", response_model=DataSourcePage, summary="searchDataSources", responses=problems(400))
def search_data_sources(
    _caller: AnyCaller,
    runtime: RuntimeDep,
    query: Annotated[str | None, Query(max_length=200, description="name or alias words")] = None,
    type: Annotated[SourceType | None, Query()] = None,
    near: Annotated[str | None, Query(max_length=60, description="ZIP code or 'lat,lon'")] = None,
    radius: Annotated[
        float | None, Query(gt=0, le=500, description="miles, with near (default 25)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=directory.MAX_LIMIT)] = directory.DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> DataSourcePage:
    place = directory.parse_near(near, radius)
    page = directory.search(
        runtime, query=query, source_type=type, near=place, limit=limit, offset=offset
    )
    items = [DataSourceOut.of(s, page.distances.get(s.id)) for s in page.items]
    return DataSourcePage(
        items=items,
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{connection_id}", response_model=DataSourceOut, summary="getDataSource")
def get_data_source(connection_id: str, _caller: AnyCaller, runtime: RuntimeDep) -> DataSourceOut:
    return DataSourceOut.of(directory.data_source(runtime, connection_id=connection_id))


@router.get(
    "/{connection_id}/health",
    response_model=SourceHealthOut,
    summary="getDataSourceHealth",
    description="How the data source has answered every tether process over the last hour "
    "(API key only): last success, error rate, throttling, token endpoint failures, and "
    "whether it is degraded for everyone (docs/operations.md).",
)
def get_data_source_health(
    connection_id: str, _tenant: TenantCaller, runtime: RuntimeDep
) -> SourceHealthOut:
    return SourceHealthOut.of(source_health.source_health(runtime, source_id=connection_id))
